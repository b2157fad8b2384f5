"""Deterministic descriptions of per-item transforms, so the data fingerprint can tell them apart.

The fingerprint hashed ``b"?"`` for any transform that is not a dataclass, so two datasets differing only
in a lambda or a torchvision ``Resize(28)`` / ``Resize(32)`` collided and a resume on the other one went
on silently. A description must be the same in every process (no ``id()``, no memory address, no
``hash()`` of a string) and must not follow state that moves while training (a ``torch.Generator``), or a
legitimate resume would be refused. What cannot be described that way is marked unknown, never guessed.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import types
from dataclasses import fields, is_dataclass
from typing import Any

import torch

UNKNOWN = "<unknown>"
"""The description of a part netsculpt cannot see into reliably (a user's own callable class, ...)."""

_MAX_DEPTH = 12  # nested transforms / referenced helpers to follow before calling the rest unknown
_SCALARS = (type(None), bool, int, float, complex, str, bytes)


def describe(obj: Any) -> str:
    """A description of ``obj`` stable across processes; contains :data:`UNKNOWN` where it could not see."""
    return _Describer().run(obj, _MAX_DEPTH)


class _Describer:
    """One description: remembers the functions already entered so recursive helpers terminate."""

    def __init__(self) -> None:
        self.entered: set[int] = set()

    def run(self, obj: Any, depth: int) -> str:
        if depth <= 0:
            return UNKNOWN
        if isinstance(obj, _SCALARS):
            return repr(obj)
        if isinstance(obj, enum.Enum):
            return f"{_name(type(obj))}.{obj.name}"
        if isinstance(obj, torch.dtype | torch.device):
            return str(obj)
        if isinstance(obj, torch.Tensor):
            return _tensor(obj)
        if isinstance(obj, tuple | list):
            return f"{type(obj).__name__}[{', '.join(self.run(v, depth - 1) for v in obj)}]"
        if isinstance(obj, dict):
            items = sorted((self.run(k, depth - 1), self.run(v, depth - 1)) for k, v in obj.items())
            return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
        if isinstance(obj, set | frozenset):  # iteration order follows PYTHONHASHSEED: sort
            return f"{type(obj).__name__}{{{', '.join(sorted(self.run(v, depth - 1) for v in obj))}}}"
        if isinstance(obj, types.ModuleType):
            return f"module {obj.__name__}"
        if isinstance(obj, type):
            return f"class {_name(obj)}"
        if isinstance(obj, functools.partial):
            parts = [self.run(obj.func, depth - 1), self.run(obj.args, depth - 1)]
            return f"partial({', '.join(parts)}, {self.run(obj.keywords, depth - 1)})"
        if isinstance(obj, types.MethodType):
            return f"method({self.run(obj.__func__, depth - 1)} of {self.run(obj.__self__, depth - 1)})"
        if isinstance(obj, types.FunctionType):
            return self.function(obj, depth)
        if isinstance(obj, types.BuiltinFunctionType | types.BuiltinMethodType):
            return f"builtin {getattr(obj, '__module__', None)}.{obj.__qualname__}"
        if type(obj).__module__.startswith("torchvision.transforms"):
            return self.torchvision(obj, depth)
        if is_dataclass(obj) and not isinstance(obj, type):
            values = ", ".join(f"{f.name}={self.run(getattr(obj, f.name), depth - 1)}" for f in fields(obj))
            return f"{_name(type(obj))}({values})"
        return UNKNOWN

    def function(self, fn: types.FunctionType, depth: int) -> str:
        """Name, code (bytes, constants, names), defaults, closure contents and the user globals it reads."""
        name = f"{fn.__module__}.{fn.__qualname__}"
        if id(fn) in self.entered:
            return f"function {name}"  # recursion: already being described further up
        self.entered.add(id(fn))
        parts = [f"function {name}", _code(fn.__code__)]
        parts += [self.run(fn.__defaults__, depth - 1), self.run(fn.__kwdefaults__, depth - 1)]
        for cell in fn.__closure__ or ():
            try:
                parts.append(self.run(cell.cell_contents, depth - 1))
            except ValueError:  # an empty cell (a variable not yet assigned)
                parts.append("<empty cell>")
        for global_name in sorted(_global_names(fn.__code__)):
            if global_name in fn.__globals__:
                value = fn.__globals__[global_name]
                parts.append(f"{global_name}={self.global_value(value, fn, depth - 1)}")
        return "(" + "; ".join(parts) + ")"

    def global_value(self, value: Any, fn: types.FunctionType, depth: int) -> str:
        """A global the function reads: a helper from another module (torch, the standard library) by
        name only, so upgrading a library does not refuse a resume; the user's own values in full."""
        if isinstance(value, types.FunctionType) and value.__module__ != fn.__module__:
            return f"function {value.__module__}.{value.__qualname__}"
        return self.run(value, depth)

    def torchvision(self, obj: Any, depth: int) -> str:
        """torchvision transforms have a complete repr of their settings (``Resize(size=28, ...)``), except
        the containers (``Compose``, ``RandomApply``) and ``Lambda``, whose parts are described here."""
        name = _name(type(obj))
        if isinstance(getattr(obj, "transforms", None), list | tuple):
            extra = {k: v for k, v in vars(obj).items() if k in ("p", "probabilities")}
            return f"{name}({self.run(list(obj.transforms), depth - 1)}, {self.run(extra, depth - 1)})"
        if callable(getattr(obj, "lambd", None)):
            return f"{name}({self.run(obj.lambd, depth - 1)})"
        text = repr(obj)
        return UNKNOWN if " at 0x" in text else f"{name}:{text}"  # a repr with an address changes per run


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _tensor(tensor: torch.Tensor) -> str:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    return f"tensor({tensor.dtype}, {tuple(tensor.shape)}, {hashlib.sha256(data).hexdigest()})"


def _code(code: types.CodeType) -> str:
    """Bytecode, constants (nested functions' code in turn) and names: the same source gives the same."""
    consts = [_code(c) if isinstance(c, types.CodeType) else _Describer().run(c, 4) for c in code.co_consts]
    digest = hashlib.sha256(code.co_code)
    digest.update(repr((consts, code.co_names, code.co_varnames, code.co_argcount)).encode())
    return f"code {digest.hexdigest()}"


def _global_names(code: types.CodeType) -> set[str]:
    """Names the code (and the functions defined inside it) may read as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names
