"""Deployed int8 artefacts in a run folder, loaded back as callable modules: ONNX, OpenVINO IR, and
``torch.export`` programs.

Each is an ``nn.Module`` whose ``forward`` runs the artefact on its own runtime (``deployed_runtime``
names it), so evaluation loops work on it unchanged and the runtime registry knows where it may run.

Safety: ``torch.export.load`` unpickles parts of a ``.pt2`` archive with ``weights_only=False`` (torch
2.14's ``pt2_archive/_package.py``), so a crafted file runs code. A program is therefore loaded only
when its SHA-256 is in this user's trust list (``~/.cache/netsculpt/trusted_programs.json``), which
netsculpt writes when it saves a program itself; a hash beside the file would not do, since whoever
hands over a folder can forge that too. Anything else is refused with what to do (docs/security.md).
ONNX and OpenVINO IR files are protobuf / XML plus raw weights and are parsed, never executed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.fileio import atomic_write, write_json
from netsculpt.runtimes.output_tree import OUTPUTS_NAME, OutputTree, graph_outputs, read_outputs

ONNX_NAME, OPENVINO_NAME, PROGRAM_NAME = "model.int8.onnx", "model.int8.xml", "model.int8.pt2"
DETECTOR_NAME = "int8_detector.json"  # netsculpt.weights.int8_detector: the graph is a detector's backbone
RUNTIME_OF = {ONNX_NAME: "onnxruntime", OPENVINO_NAME: "openvino", PROGRAM_NAME: "torch"}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def trust_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "netsculpt" / "trusted_programs.json"


def _trusted() -> dict[str, str]:
    path = trust_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def trust_program(path: Path) -> str:
    """Record ``path``'s hash as written by netsculpt here (only our own writer calls this)."""
    import fcntl

    digest = sha256(path)
    trust_file().parent.mkdir(parents=True, exist_ok=True)
    with trust_file().with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel runs (pytest workers) must not drop each other's entry
        write_json(trust_file(), {**_trusted(), digest: str(path.resolve())})
    return digest


class OpenVinoModule(nn.Module):
    """An OpenVINO IR (``.xml`` + ``.bin``) compiled for the CPU with torch's current thread count.

    ``outputs``: the float model's output structure, as :class:`~netsculpt.weights.quantize.OnnxModule`
    takes it; without it the graph's first output comes back as a single tensor."""

    deployed_runtime = "openvino"

    def __init__(self, path: str | os.PathLike[str], outputs: OutputTree | None = None) -> None:
        from netsculpt.runtimes.openvino_rt import compile_model

        super().__init__()
        self.path = Path(path)
        if not self.path.is_file() or not self.path.with_suffix(".bin").is_file():
            raise CheckpointError(f"OpenVINO IR {str(self.path)!r} (and its .bin) does not exist")
        try:
            self.compiled = compile_model(self.path, torch.get_num_threads())
        except Exception as exc:
            raise CheckpointError(f"OpenVINO cannot load {str(self.path)!r}: {str(exc)[:300]}") from None
        self.request = self.compiled.create_infer_request()
        self.outputs = graph_outputs(outputs, len(self.compiled.outputs), str(self.path))
        # read once here, not on every (timed) call: the shapes each input port was compiled for
        self._wanted = [(port.get_any_name(), port.get_partial_shape()) for port in self.compiled.inputs]

    def forward(self, *inputs: torch.Tensor) -> Any:
        import numpy as np

        from netsculpt.weights.quantize import calibration_input

        if len(inputs) != len(self.compiled.inputs):
            raise ConfigError(
                f"{self.path.name} takes {len(self.compiled.inputs)} input tensors, got {len(inputs)}; "
                "pass them positionally, in forward's order"
            )
        arrays = [calibration_input(x).numpy() for x in inputs]
        self._check_shapes(arrays)
        out = self.request.infer(arrays)
        if self.outputs is None:
            return torch.from_numpy(np.array(out[self.compiled.outputs[0]]))
        return self.outputs.rebuild([torch.from_numpy(np.array(out[port])) for port in self.compiled.outputs])

    def _check_shapes(self, arrays: list[Any]) -> None:
        """Refuse an input the IR was not compiled for: OpenVINO ran it anyway and returned an empty or the
        previous call's output (a 24 px image through a 16 px IR gave [0, 2, 16, 16]) until 2026-12-07."""
        from netsculpt.runtimes.openvino_rt import import_openvino

        ov = import_openvino()
        for (name, wanted), array in zip(self._wanted, arrays):
            if not wanted.compatible(ov.PartialShape(list(array.shape))):
                raise ConfigError(
                    f"{self.path.name} takes {name} of shape {wanted} (? is any size), got "
                    f"{list(array.shape)}; its graph is fixed at the example input's size apart from the "
                    "batch: quantize at the size you run it on, or resize the input"
                )

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size + self.path.with_suffix(".bin").stat().st_size


class ProgramModule(nn.Module):
    """A ``torch.export`` program (``.pt2``) saved by netsculpt; int8 kernels need ``compiled()``."""

    deployed_runtime = "torch"

    def __init__(self, path: str | os.PathLike[str], *, trust: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"exported program {str(self.path)!r} does not exist")
        if not trust and sha256(self.path) not in _trusted():
            raise CheckpointError(
                f"refusing to load {str(self.path)!r}: torch.export.load unpickles parts of a .pt2 file, "
                "which can run code, and this file was not written by netsculpt for this user (its SHA-256 "
                f"is not in {trust_file()}). Rerun the quantize stage to write your own, or pass trust=True "
                "only for a file you made yourself (docs/security.md)"
            )
        # registers the quantized_decomposed ops a PT2E program calls: a fresh process (a resumed run)
        # had not imported torchao's PT2E, and torch.export.load failed to resolve them
        import torch.ao.quantization.fx._decomposed

        self.program = torch.export.load(str(self.path))
        # kept out of nn.Module's children: an exported module refuses .train()/.eval(), which every
        # evaluation loop calls on the wrapper
        object.__setattr__(self, "module_", self.program.module())
        object.__setattr__(self, "_compiled", None)  # not a child either (see module_)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module_(*inputs)

    def compiled(self) -> Any:
        """The program under ``torch.compile``: what runs PT2E's int8 kernels, provided it compiles (its
        first call at a shape) inside ``torch._inductor.config.patch(freezing=True)``, which constant-folds
        the weight quantization into int8 kernels. The compile runtime does so; netsculpt never sets
        freezing for the whole process, where it would freeze every model the user compiles later."""
        if self._compiled is None:
            object.__setattr__(self, "_compiled", torch.compile(self.module_, backend="inductor"))
        return self._compiled

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def load_artefact(
    folder: str | os.PathLike[str], trust_builder: str | None = None, *, graph_only: bool = False
) -> nn.Module | None:
    """The int8 artefact a quantize stage left in ``folder``, or None when it has none. An ONNX / OpenVINO
    graph returns the structure recorded in ``model.int8.outputs.json``; a folder without one (a single
    tensor output, or a run from before netsculpt recorded it) returns the graph's first output.

    A folder with ``int8_detector.json`` holds a detector's int8 backbone: the detector is rebuilt around
    it from the float detector saved in ``folder/model`` (``trust_builder`` as for ``netsculpt.load``);
    ``graph_only`` returns the backbone's graph alone."""
    from netsculpt.weights.quantize import OnnxModule

    folder = Path(folder)
    if not graph_only and (folder / DETECTOR_NAME).is_file():
        return _load_detector(folder, trust_builder)
    if (folder / ONNX_NAME).is_file():
        return OnnxModule(folder / ONNX_NAME, read_outputs(folder))
    if (folder / OPENVINO_NAME).is_file():
        return OpenVinoModule(folder / OPENVINO_NAME, read_outputs(folder))
    if (folder / PROGRAM_NAME).is_file():
        return ProgramModule(folder / PROGRAM_NAME)
    return None


def _load_detector(folder: Path, trust_builder: str | None) -> nn.Module:
    from netsculpt.io import is_saved_model, load
    from netsculpt.weights.int8_detector import load_int8_detector

    if not is_saved_model(folder / "model"):
        raise CheckpointError(
            f"{str(folder)!r} holds an int8 detector backbone ({DETECTOR_NAME}) but no float detector in "
            "model/ to rebuild the detector around; call netsculpt.weights.int8_detector."
            "load_int8_detector(folder, float_model) with the detector it was quantized from"
        )
    return load_int8_detector(folder, load(folder / "model", trust_builder=trust_builder))


def remove_artefacts(folder: str | os.PathLike[str]) -> None:
    """Delete the int8 artefacts in ``folder`` before a new one is written there.

    :func:`load_artefact` takes the first kind it finds (ONNX, then OpenVINO IR, then a program), so an
    unfinished earlier attempt's artefact of another runtime (a killed ``runtime: auto`` stage that then
    picks another runtime on its rerun) was loaded instead of the new one, under the new one's name.
    """
    folder = Path(folder)
    names = (DETECTOR_NAME, ONNX_NAME, "model.fp32.onnx", OPENVINO_NAME, "model.int8.bin", PROGRAM_NAME)
    for name in (*names, OUTPUTS_NAME):
        (folder / name).unlink(missing_ok=True)


def is_artefact(model: nn.Module) -> bool:
    """An int8 artefact, or a detector whose backbone is one (netsculpt.weights.int8_detector)."""
    return getattr(model, "deployed_runtime", None) is not None or _int8_detector(model)


def _int8_detector(model: nn.Module) -> bool:
    from netsculpt.weights.int8_detector import is_int8_detector

    return is_int8_detector(model)


def artefact_size(model: nn.Module) -> int:
    """An artefact's bytes: its files; an int8 detector's backbone files plus its float32 rest."""
    if _int8_detector(model):
        from netsculpt.weights.int8_detector import int8_detector_size

        return int8_detector_size(model)
    return int(model.size_bytes)


def refuse_artefact(model: nn.Module, call: str) -> None:
    """Refuse an int8 artefact where a PyTorch model is expected (``ns.measure``, ``ns.save``), naming
    what to call instead: its graph runs on its own runtime, and its file is already written."""
    if not is_artefact(model):
        return
    if _int8_detector(model):
        _refuse_detector(model, call)
    owner = model.deployed_runtime
    where = f"{str(model.path)!r}" if getattr(model, "path", None) is not None else "its run folder"
    if call == "ns.save":
        raise ConfigError(
            f"ns.save writes a PyTorch model's weights, but this {type(model).__name__} is an int8 {owner} "
            f"artefact, already written as {where}: keep (or copy) that file's folder and reload it with "
            "netsculpt.runtimes.artefacts.load_artefact(folder)"
        )
    raise ConfigError(
        f"{call} counts params and MACs of a PyTorch model, but this {type(model).__name__} is an int8 "
        f"{owner} artefact whose graph runs outside PyTorch's modules: measure the float model it was made "
        f"from for counts; the artefact's file size is .size_bytes, and measure_latency(artefact, x, "
        f"runtime={timing_runtime(model)!r}) times it on its own runtime"
    )


def _refuse_detector(model: nn.Module, call: str) -> None:
    name, runtime = type(model).__name__, model.backbone.runtime
    what = f"this {name}'s backbone is an int8 {runtime} graph (netsculpt.weights.int8_detector)"
    if call == "ns.save":
        raise ConfigError(
            f"ns.save writes a PyTorch model's weights, but {what}, already written in its quantize "
            "folder: save the float detector, keep that folder, and rebuild the int8 one with "
            "load_int8_detector(folder, float_model)"
        )
    raise ConfigError(
        f"{call} counts params and MACs of a PyTorch model, but {what}, which runs outside PyTorch's "
        "modules: measure the float detector for counts; measure_latency(model, x) times the int8 "
        "detector whole (its float parts in PyTorch eager), int8_detector_size(model) gives its bytes"
    )


def timing_runtime(model: nn.Module) -> str:
    """Where an artefact is timed: its own runtime; an exported program under inductor (its int8 path); an
    int8 detector on PyTorch eager (its float parts are eager torch, its backbone calls its own runtime)."""
    if _int8_detector(model):
        return "torch"
    owner = model.deployed_runtime
    return "compile" if owner == "torch" else owner


def save_program(program: Any, path: Path) -> Path:
    """``torch.export.save`` atomically, then trust the file's hash (see the module docstring)."""
    import io

    buffer = io.BytesIO()  # torch.export.save wants a .pt2 name or a buffer; the temporary file has neither
    torch.export.save(program, buffer)
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    trust_program(path)
    return path
