"""Leave nothing of a trace inside the user's model: put back every attribute the traced forward wrote.

A traced forward runs the model's own code, and that code may cache things on its modules: ultralytics'
``Detect`` head stores ``self.shape`` (a ``torch.Size`` built from the tracer's channel counts) and the
anchors it made from zero-valued shape-only activations. Left there, the next ``copy.deepcopy`` or
``pickle.dumps`` of the model meets netsculpt's internal types, and the caches describe a forward that
never really happened. ``ModuleSnapshot`` records each module's attributes (by identity, cheap) and a
copy of its buffers before the trace, and afterwards removes added attributes, rebinds replaced ones
and writes back buffers changed in place, so the model is exactly as it was: same attributes, same
``state_dict``. The model's next real forward rebuilds its caches itself.

Lists, dicts and sets the modules hold (and those nested in them) are also copied shallowly, and their
contents put back in place, keeping their identity: before 2026-12-07 a forward's
``self.history.append(x)`` or ``self.cache[key] = ...`` on an existing container stayed in the model
(only netsculpt's counts inside were turned into plain ints). Plain Python objects they hold (a
dataclass, a ``SimpleNamespace``, an instance of the user's own class) are walked the same way, and their
``__dict__`` put back in place: before 2026-12-07 a forward's ``self.cfg.calls += 1`` or
``self.state.last = x`` stayed. Classes, functions, module objects, modules, tensors and torch's own
objects are held by reference and never walked into.

Hooks the forward registers on a module are removed too: transformers 5 installs its output-capturing
hooks lazily in the first forward and sets ``_output_capturing_hooks_installed`` on the model. Before
2026-12-07 the flag (a new attribute) was removed and the hooks kept, so the next forward installed them
again and every SegFormer stage output was recorded twice: its decode head then fed stage 0's output to
stage 1's projection and the traced model itself no longer ran. Only hooks added during the forward are
removed (their handle ids are new); none is ever put back, so a hook netsculpt removed stays removed.
"""

from __future__ import annotations

import enum
import functools
import logging
import types
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from netsculpt.errors import TraceError

# per-module dicts nn.Module keeps its registered state in; restored entry by entry
_REGISTRIES = ("_parameters", "_buffers", "_modules")
# torch's own per-module containers (hook tables, ...): netsculpt registers and removes hooks around
# forwards itself, so putting their contents back could bring a removed netsculpt hook back to life
_TORCH_OWN = frozenset(vars(nn.Module())) - {"training"}
# of those, the hook tables: a forward may add to them (transformers' lazily installed output capture)
_HOOK_TABLES = tuple(sorted(k for k, v in vars(nn.Module()).items() if "_hooks" in k and isinstance(v, dict)))
_CONTAINER_DEPTH = 4  # nested lists / dicts / sets / plain objects to look into
_MAX_ENTRIES = 1_000_000  # entries copied in all: a module holding a huge object graph is walked no further
# held by reference, never walked into: code, classes, shared machinery, and what is restored elsewhere
_UNTOUCHED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
              functools.partial, weakref.ref, enum.Enum, logging.Logger, logging.Handler, nn.Module,
              torch.Tensor, int, float, complex, str, bytes)  # fmt: skip


class ModuleSnapshot:
    """Attributes, registered tensors and buffer values of every module of ``model``, restorable."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.modules = list({id(m): m for m in model.modules()}.values())
        self.attrs = [{k: v for k, v in vars(m).items() if k not in _REGISTRIES} for m in self.modules]
        self.registries = [{r: dict(getattr(m, r)) for r in _REGISTRIES} for m in self.modules]
        self.hooks = [{t: set(getattr(m, t, ())) for t in _HOOK_TABLES} for m in self.modules]
        self.classes = [type(m) for m in self.modules]
        # (container or a plain object's __dict__, its contents then)
        self.containers: list[tuple[Any, list[Any]]] = []
        seen: set[int] = set()
        budget = [_MAX_ENTRIES]
        for attrs in self.attrs:
            for key, value in attrs.items():
                if key not in _TORCH_OWN:
                    _record_containers(value, _CONTAINER_DEPTH, seen, self.containers, budget)
        tensors: dict[int, tuple[str, torch.Tensor]] = {}
        for name, t in model.named_parameters(remove_duplicate=True):
            tensors[id(t)] = (name, t)
        self.param_versions = {i: t._version for i, (_, t) in tensors.items()}
        self.params = tensors
        self.buffers = {
            id(b): (name, b, b._version, b.detach().clone())
            for name, b in model.named_buffers(remove_duplicate=True)
        }

    def restore(self, during: str = "while being traced") -> None:
        """Undo every change the forward made to modules, attributes and buffer values."""
        for module, cls, attrs, registries, hooks in zip(
            self.modules, self.classes, self.attrs, self.registries, self.hooks
        ):
            if type(module) is not cls:  # a lazy module materialised itself: keep what it became
                continue
            _drop_new_hooks(module, hooks)
            state = vars(module)
            for key in [k for k in state if k not in attrs and k not in _REGISTRIES]:
                del state[key]
            for key, value in attrs.items():
                if state.get(key, _MISSING) is not value:
                    state[key] = value
            for reg, saved in registries.items():
                current = getattr(module, reg)
                if current.keys() != saved.keys() or any(current[k] is not v for k, v in saved.items()):
                    current.clear()
                    current.update(saved)
        for container, contents in self.containers:
            _put_back(container, contents)
        with torch.no_grad():
            for _name, buf, version, copy in self.buffers.values():
                if buf._version != version:
                    buf.copy_(copy)
        changed = [name for i, (name, p) in self.params.items() if p._version != self.param_versions[i]]
        if changed:
            raise TraceError(
                f"the model's forward wrote into its own parameter(s) {', '.join(changed[:5])} in place "
                f"{during}, so netsculpt cannot promise it left the model as it was; make that "
                "update conditional on self.training (tracing runs in eval mode) or do it outside forward"
            )


@contextmanager
def left_as_found(model: nn.Module, during: str) -> Iterator[None]:
    """Run a block that calls ``model``'s forward, then put back whatever the forward wrote into it.

    Measurements (MACs, activation memory, latency, and the MAC costs behind ``target=``) run the user's
    own model rather than a deep copy: the snapshot keeps attribute references and a copy of the buffers
    only, where a copy would double the parameters' memory. ``during`` says what ran, for the error
    raised if the forward wrote into a parameter.
    """
    snapshot = ModuleSnapshot(model)
    try:
        yield
    finally:
        snapshot.restore(during)


def _drop_new_hooks(module: nn.Module, before: dict[str, set[int]]) -> None:
    """Remove hooks registered on ``module`` since the snapshot (handle ids only grow, so new ids are new
    hooks); hooks that were there, or were removed meanwhile, are left as they are now."""
    for table, ids in before.items():
        current = getattr(module, table, None)
        if isinstance(current, dict) and current.keys() - ids:
            for key in [k for k in current if k not in ids]:
                del current[key]


def _record_containers(
    value: Any, depth: int, seen: set[int], out: list[tuple[Any, list[Any]]], budget: list[int]
) -> None:
    """Append ``(container, shallow copy of its contents)`` for every list / dict / set in ``value``, and
    for every plain object's ``__dict__`` (restored in place like a dict, so the object keeps its
    identity); ``seen`` guards against cycles, ``depth`` and ``budget`` (entries left) bound the walk."""
    if depth <= 0 or id(value) in seen or budget[0] <= 0:
        return
    if isinstance(value, list | dict | set):
        container: Any = value
    elif isinstance(value, tuple):  # immutable itself, but it may hold a list
        for item in value:
            _record_containers(item, depth - 1, seen, out, budget)
        return
    else:
        container = _instance_dict(value)
        if container is None:
            return
        seen.add(id(value))
    seen.add(id(container))
    contents = list(container.items()) if isinstance(container, dict) else list(container)
    budget[0] -= len(contents)
    out.append((container, contents))
    items = container.values() if isinstance(container, dict) else container
    for item in list(items):
        _record_containers(item, depth - 1, seen, out, budget)


def _instance_dict(value: Any) -> dict[str, Any] | None:
    """The ``__dict__`` of a plain object the forward may write into; None for anything netsculpt must
    not walk (``_UNTOUCHED``, torch's own objects, objects with ``__slots__`` only)."""
    if isinstance(value, _UNTOUCHED) or str(getattr(type(value), "__module__", "")).split(".")[0] == "torch":
        return None
    try:  # not getattr: a class's own __getattr__ must not run or answer for __dict__
        state = object.__getattribute__(value, "__dict__")
    except (AttributeError, TypeError):
        return None
    return state if type(state) is dict else None


def _put_back(container: Any, contents: list[Any]) -> None:
    """Restore ``container``'s contents in place (its identity is kept), only when they changed."""
    if isinstance(container, dict):
        now = list(container.items())
        same = len(now) == len(contents) and all(
            k is j and v is w for (k, v), (j, w) in zip(now, contents, strict=True)
        )
        if not same:
            container.clear()
            container.update(contents)
    elif isinstance(container, set):
        if {id(v) for v in container} != {id(v) for v in contents}:
            container.clear()
            container.update(contents)
    elif len(container) != len(contents) or any(a is not b for a, b in zip(container, contents, strict=True)):
        container[:] = contents


class _Missing:
    pass


_MISSING: Any = _Missing()
