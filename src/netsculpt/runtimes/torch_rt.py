"""PyTorch eager and ``torch.compile`` (inductor, CPU) as registry runtimes.

Eager is the model as a user runs it. ``torch.compile`` compiles on the first call at each input shape
(tens of seconds for a ResNet on one slow core); :meth:`CompileRuntime.prepare` makes that first call, so
timings never include compilation. Inductor on CPU generates C++ and needs a compiler on PATH.
"""

from __future__ import annotations

import contextlib
import shutil
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from netsculpt.measure._inputs import as_tuple, check_module
from netsculpt.modes import eval_mode
from netsculpt.runtimes.base import Prepared, Runtime, RuntimeUnsupported, first_line, register, torch_threads


def tensors(output: object) -> list[torch.Tensor]:
    return [x for x in tree_flatten(output)[0] if isinstance(x, torch.Tensor)]


def deployed_runtime(model: nn.Module) -> str | None:
    """The runtime a deployed artefact (an int8 ONNX / OpenVINO / exported program) belongs to."""
    return getattr(model, "deployed_runtime", None)


def check_owner(model: nn.Module, runtime: str) -> str | None:
    """``model``'s :func:`deployed_runtime`, refused unless it is ``runtime`` or a plain module (``None``):
    an int8 artefact holds kernels of one runtime only, and every runtime refuses another's alike."""
    owner = deployed_runtime(model)
    if owner not in (None, runtime):
        raise RuntimeUnsupported(f"this is an int8 {owner} artefact: it runs on {owner} only")
    return owner


class EagerRuntime(Runtime):
    name, label = "torch", "PyTorch eager"

    def prepare(self, model: nn.Module, example_inputs: Any, threads: int = 1) -> Prepared:
        check_module(model)
        check_owner(model, "torch")
        inputs = as_tuple(example_inputs)
        restore = eval_mode(model)
        restore.__enter__()

        def call() -> object:
            with torch_threads(threads), torch.no_grad():
                return model(*inputs)

        def run(other: tuple[Any, ...]) -> list[torch.Tensor]:
            with torch_threads(threads), torch.no_grad():
                return tensors(model(*other))

        try:
            call()
        except Exception as exc:
            restore.__exit__(None, None, None)
            raise RuntimeUnsupported(f"the model fails in PyTorch eager: {first_line(exc)}") from None
        return Prepared(self.name, call, run, close=lambda: restore.__exit__(None, None, None))


class CompileRuntime(Runtime):
    name, label = "compile", "torch.compile (inductor)"

    def _available(self) -> str | None:
        if shutil.which("g++") is None and shutil.which("c++") is None:
            return "inductor on CPU needs a C++ compiler on PATH (apt-get install g++)"
        return None

    def prepare(self, model: nn.Module, example_inputs: Any, threads: int = 1) -> Prepared:
        self.check()
        check_module(model)
        check_owner(model, "torch")
        inputs = as_tuple(example_inputs)
        restore = eval_mode(model)
        restore.__enter__()
        marked = "_is_torch_compile" in vars(model)  # torch.compile marks the module it wraps

        def unmark() -> None:
            if not marked:
                vars(model).pop("_is_torch_compile", None)

        compiled = getattr(model, "compiled", None)  # an exported int8 program compiles itself (freezing)

        def compiling() -> contextlib.AbstractContextManager[object]:
            """Weight freezing for an int8 program's compilations only: set for the whole process, it
            would freeze the weights of every model the user compiles afterwards (stale after an update)."""
            if compiled is None:
                return contextlib.nullcontext()
            import torch._inductor.config as inductor_config

            return inductor_config.patch(freezing=True)

        try:
            with torch_threads(threads), torch.no_grad(), compiling():
                fn = compiled() if compiled is not None else torch.compile(model, backend="inductor")
                fn(*inputs)  # compile now, at these shapes: never inside a timing
        except Exception as exc:
            restore.__exit__(None, None, None)
            unmark()
            torch._dynamo.reset()
            raise RuntimeUnsupported(f"torch.compile cannot compile the model: {first_line(exc)}") from None

        def call() -> object:
            with torch_threads(threads), torch.no_grad():
                return fn(*inputs)

        def run(other: tuple[Any, ...]) -> list[torch.Tensor]:
            with torch_threads(threads), torch.no_grad(), compiling():  # other shapes may recompile
                return tensors(fn(*other))

        def close() -> None:
            restore.__exit__(None, None, None)
            unmark()
            # dynamo keeps every compiled graph, and past its recompile limit (8 per code object) it
            # silently runs eager: the next model prepared here must be compiled, not fall back
            torch._dynamo.reset()

        return Prepared(self.name, call, run, close=close)


register(EagerRuntime())
register(CompileRuntime())
