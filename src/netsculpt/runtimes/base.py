"""The runtime registry: one object per CPU runtime, each able to say whether it is here and to prepare
a model into a timed call.

A runtime turns ``(model, example_inputs, threads)`` into a :class:`Prepared` call with the inputs bound,
so every measurement (``bench``, latency tables, int8 selection) times the same thing: one inference on
that runtime, nothing else. A runtime that is not installed says why in :meth:`Runtime.available`; one
that cannot run a given model raises :class:`RuntimeUnsupported` with the reason, which callers turn into
a result row rather than a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError, NetsculptError, UnknownNameError
from netsculpt.measure.latency_model import torch_threads  # noqa: F401  (re-exported for the runtimes)

INSTALL_OPENVINO = "pip install openvino==2026.4.1 nncf==3.4.0"


class UnknownRuntimeError(UnknownNameError, ConfigError):
    """A runtime name the registry does not have (a ConfigError too: it is a bad setting)."""


class RuntimeUnsupported(NetsculptError, RuntimeError):
    """This runtime cannot run this model (not installed, export failed, an op is unsupported)."""


@dataclass
class Prepared:
    """A model made ready on one runtime: ``call()`` runs one inference on the bound example inputs.

    ``run(inputs)`` runs it on other inputs of the same shapes and returns the outputs as tensors (for
    checks against eager PyTorch); ``close()`` frees what ``prepare`` built (sessions, temporary files).
    """

    runtime: str
    call: Callable[[], object]
    run: Callable[[tuple[Any, ...]], list[torch.Tensor]]
    notes: list[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None


class Runtime:
    """Base class: subclasses set ``name``/``label`` and implement ``_available`` and ``prepare``."""

    name: str = ""
    label: str = ""

    def available(self) -> str | None:
        """None when this runtime can be used here, else why not (and how to get it)."""
        return self._available()

    def _available(self) -> str | None:
        return None

    def prepare(self, model: nn.Module, example_inputs: Any, threads: int = 1) -> Prepared:
        raise NotImplementedError

    def check(self) -> None:
        why = self.available()
        if why is not None:
            raise RuntimeUnsupported(f"{self.label} is not available: {why}")


RUNTIMES: dict[str, Runtime] = {}
ALIASES = {
    "eager": "torch",
    "pytorch": "torch",
    "inductor": "compile",
    "ort": "onnxruntime",
    "ov": "openvino",
}


def register(runtime: Runtime) -> Runtime:
    RUNTIMES[runtime.name] = runtime
    return runtime


def runtime_names() -> list[str]:
    return list(RUNTIMES)


def get_runtime(name: str) -> Runtime:
    """The registered runtime called ``name`` (or an alias: eager, inductor, ort, ov)."""
    key = ALIASES.get(name, name)
    if key not in RUNTIMES:
        raise UnknownRuntimeError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    return RUNTIMES[key]


def parse_runtimes(text: str | list[str]) -> list[str]:
    """``"torch,ort"`` -> ``["torch", "onnxruntime"]``: canonical names, each checked, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [get_runtime(item.strip()).name for item in items if item.strip()]
    if not names:
        raise ConfigError(f"no runtime named in {text!r}; choose from {', '.join(RUNTIMES)}")
    return list(dict.fromkeys(names))


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one readable line (type and first line of its message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:limit]}" if text else type(exc).__name__
