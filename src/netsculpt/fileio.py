"""Safe file I/O: atomic writes and pickle-free tensor loading.

Outputs are written to a temporary file in the same folder and renamed into place, so an interrupted
run never leaves a half-written file where a good one was. Tensors are read from safetensors or with
``torch.load(weights_only=True)``: a file a user was handed is never unpickled. A write that fails
because the disk or the file size limit is full raises :class:`~netsculpt.errors.DiskFullError` naming
the file, and the file it would have replaced is left as it was.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from netsculpt import faults
from netsculpt.errors import CheckpointError, DiskFullError

#: errno values that mean "no room": the device, the user's quota, or the process's file size limit.
FULL_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if code)
_ROOM = 1 << 20  # below this much free space a failed write is taken for a full disk


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, flush it to disk, then rename the temporary file onto ``path``.

    Readers see the old file or the new one, never a part. Raises DiskFullError (the old file intact,
    the temporary one removed) when the write fails for lack of space.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            write(tmp_path)
            _fsync(tmp_path)  # the bytes reach the disk before the name does
        except Exception as exc:
            reason = disk_full_reason(exc, tmp_path.parent, tmp_path)
            if reason is None:
                raise
            raise DiskFullError(
                f"cannot write {str(path)!r}: {reason}. Nothing was replaced: the previous "
                f"{path.name} (if any) is intact; rerun once there is room."
            ) from None
        faults.point(f"write:{path.name}")
        umask = os.umask(0)  # mkstemp makes 0600 files: give the result the permissions a plain open() would
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    faults.point(f"wrote:{path.name}")
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)  # Windows commits writable fds only
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_full_reason(
    exc: BaseException, folder: str | os.PathLike[str], written: str | os.PathLike[str] | None = None
) -> str | None:
    """Why a failed write into ``folder`` ran out of room ("the disk is full ..."), or None if it did not.

    The errno is looked for along the exception's chain (``torch.save`` wraps it in a RuntimeError);
    writers that drop it entirely are judged by the free space of ``folder``'s file system and, when
    the file being ``written`` is known, by the process's file size limit.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in FULL_ERRNOS:
            return _describe(seen.errno)
        text = str(seen)
        for code in FULL_ERRNOS:
            if f"os error {code})" in text or os.strerror(code) in text:
                return _describe(code)
        seen = seen.__cause__ or seen.__context__
    try:
        stats = os.statvfs(folder)
        if stats.f_bavail * stats.f_frsize < _ROOM:
            return _describe(errno.ENOSPC)
    except (OSError, AttributeError):  # no statvfs on Windows
        pass
    if written is not None:
        try:
            import resource

            soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            size = Path(written).stat().st_size if Path(written).is_file() else 0
            if soft != resource.RLIM_INFINITY and size >= soft - _ROOM:
                return _describe(errno.EFBIG)
        except (ImportError, OSError):
            pass
    return None


def _describe(code: int) -> str:
    if code == errno.EFBIG:
        return (
            "the file would exceed this process's file size limit (File too large; raise it with `ulimit -f`)"
        )
    if code == getattr(errno, "EDQUOT", None):
        return "the disk quota is exhausted (Disk quota exceeded; free some space)"
    return "the disk is full (No space left on device; free some space)"


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda p: p.write_text(text))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` atomically; ``obj`` must only hold tensors and plain Python data."""

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # through a Python file, so a full disk's OSError stays on the chain
            torch.save(obj, f)

    return atomic_write(path, save)


def safe_torch_load(path: str | os.PathLike[str]) -> Any:
    """Load a torch file with ``weights_only=True``, turning every failure into a clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    _check_archive(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here: pickle, zip, unpickling-policy errors
        raise CheckpointError(
            f"cannot read {str(path)!r} as a safe PyTorch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). netsculpt only loads tensors and plain data "
            "(torch.load weights_only=True) or safetensors files; re-save the weights with "
            "torch.save(model.state_dict(), path) or safetensors."
        ) from None


_MSDOS_DIR = 0x10  # the directory bit of a zip entry's external attributes

_DAMAGED_FIX = (
    "restore the file from a good copy, or delete it to start that step over (a training run's folder "
    "resumes from scratch without it)"
)


def _check_archive(path: Path) -> None:
    """Refuse a damaged torch zip archive before ``torch.load`` reads it.

    ``torch.load`` does not verify the archive's CRC-32 checksums, so bytes changed after the write (a
    faulty disk or copy) loaded as silently wrong weights; and a cut-off file failed with a bare
    ``OSError: Invalid argument``. Legacy (non-zip) torch files have no checksums and pass through.
    Any failure of the zip reader counts as damage: a changed header byte made it raise
    ``NotImplementedError`` (compression method) or ``UnicodeDecodeError`` (file name) before
    2026-12-07. An entry marked as a directory is damage too: torch never writes one, and its reader
    then returns the tensor's storage unread (zeros or stale memory) while every CRC-32 still matches.
    """
    with path.open("rb") as fh:
        is_zip_start = fh.read(4) == b"PK\x03\x04"
    if not is_zip_start:
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            folders = [i.filename for i in archive.infolist() if i.is_dir() or i.external_attr & _MSDOS_DIR]
    except Exception as exc:  # zipfile raises BadZipFile, EOFError, OSError, NotImplementedError, ...
        raise CheckpointError(
            f"{str(path)!r} is truncated or damaged: it starts as a PyTorch archive but cannot be read "
            f"to its end ({type(exc).__name__}: {exc}), as when a copy or download did not finish; "
            f"{_DAMAGED_FIX}"
        ) from None
    if bad is not None:
        raise CheckpointError(
            f"{str(path)!r} is damaged: its part {bad!r} fails its CRC-32 checksum, so its bytes changed "
            f"after they were written (a disk or copy error) and loading it would give wrong values; "
            f"{_DAMAGED_FIX}"
        )
    if folders:
        raise CheckpointError(
            f"{str(path)!r} is damaged: its part {folders[0]!r} is marked as a folder, which PyTorch never "
            f"writes (a changed byte in the archive's directory), and loading it would give unread memory "
            f"as values; {_DAMAGED_FIX}"
        )


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors``, or a torch file holding a state dict.

    Accepts the common wrappers ``{"state_dict": ...}`` / ``{"model": ...}`` written by training scripts.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not path.is_file():
            raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {str(path)!r} as safetensors: {exc}") from None
    obj = safe_torch_load(path)
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{str(path)!r} does not hold a state dict (a mapping of names to tensors); "
            "save one with torch.save(model.state_dict(), path)"
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}
