"""A restricted unpickler for the official CIFAR python batches, which are pickles.

Unpickling runs code: any global a pickle names is imported and may be called. This unpickler resolves only
the handful of globals numpy needs to rebuild an array (plus the ``_codecs.encode`` that Python 3 uses for
bytes in protocol-2 pickles, limited to latin-1); containers, bytes, str and ints need no globals at all.
Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) is refused with a
:class:`DataError` *before* it is imported, so a tampered file cannot execute anything. Arrays that come out
are further checked by the caller (CIFAR wants uint8 only).
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from netsculpt.errors import DataError


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it, restricted to the latin-1 codec."""
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise DataError(f"pickle asked to encode with {encoding!r}; only latin-1 is allowed")
    return text.encode("latin1")


def _safe_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise DataError("pickle contains an object-dtype numpy array; refusing it (objects can carry code)")
    return dtype


try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _latin1_encode,
}
# numpy 1.x pickles name ``numpy.core``; numpy 2 writes ``numpy._core``. Both map to the running numpy.
for _package in ("numpy.core", "numpy._core"):
    ALLOWED[(f"{_package}.multiarray", "_reconstruct")] = _reconstruct
    ALLOWED[(f"{_package}.numeric", "_frombuffer")] = _frombuffer


class RestrictedUnpickler(pickle.Unpickler):
    """Only builtin containers, bytes, str, numbers and numpy arrays may come out of this unpickler."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to unpickle global {module}.{name}: this file is not a plain data pickle "
                "(official CIFAR batches only contain numpy arrays, lists, bytes and ints)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError("refusing a pickle with persistent ids: not a plain data pickle")


def safe_load(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (``encoding='bytes'``, as Python 2 files need)."""
    data = Path(path).read_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated or corrupt files raise many different errors
        raise DataError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
