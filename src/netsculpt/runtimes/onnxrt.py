"""ONNX Runtime (CPU execution provider) as a registry runtime.

The model is exported with :func:`netsculpt.measure.export_onnx` into a temporary folder (an int8 ONNX
artefact is used as it is) and run in a session with ``threads`` intra-op threads and inputs converted
to numpy once, outside the timed call.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import NetsculptError
from netsculpt.measure._inputs import as_tuple, check_module
from netsculpt.runtimes.base import Prepared, Runtime, RuntimeUnsupported, first_line, register, torch_threads
from netsculpt.runtimes.torch_rt import check_owner


def onnx_file(model: nn.Module, inputs: tuple[Any, ...], folder: Path) -> Path:
    """The ONNX file to run: an ONNX artefact's own file, else a fresh export into ``folder``."""
    from netsculpt.measure.onnx_runtime import export_onnx

    if check_owner(model, "onnxruntime") is not None:
        return Path(model.path)
    try:
        return export_onnx(model, inputs, folder / "model.onnx")
    except NetsculptError as exc:
        raise RuntimeUnsupported(f"ONNX export failed: {' '.join(str(exc).split())[:400]}") from None


class OnnxRuntime(Runtime):
    name, label = "onnxruntime", "ONNX Runtime"

    def _available(self) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime)"
        return None

    def prepare(self, model: nn.Module, example_inputs: Any, threads: int = 1) -> Prepared:
        from netsculpt.measure.onnx_runtime import _feeds, _session

        self.check()
        check_module(model)
        inputs = as_tuple(example_inputs)
        tmp = tempfile.TemporaryDirectory(prefix="netsculpt-ort-")
        try:
            path = onnx_file(model, inputs, Path(tmp.name))
            with torch_threads(threads):  # the session takes torch's thread count
                session = _session(path)
            feeds = _feeds(session, inputs)
            session.run(None, feeds)
        except RuntimeUnsupported:
            tmp.cleanup()
            raise
        except Exception as exc:  # ONNX Runtime's own error types: an op it has no kernel for
            tmp.cleanup()
            raise RuntimeUnsupported(f"ONNX Runtime cannot run the model: {first_line(exc)}") from None

        def run(other: tuple[Any, ...]) -> list[torch.Tensor]:
            return [torch.from_numpy(y) for y in session.run(None, _feeds(session, other))]

        return Prepared(self.name, lambda: session.run(None, feeds), run, close=tmp.cleanup)


register(OnnxRuntime())
