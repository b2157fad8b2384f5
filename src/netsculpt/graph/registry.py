"""Channel-rule registry: how each function or module moves channels from inputs to outputs.

Rules are keyed by the function object the tracer observes (``torch.cat``, ``torch.Tensor.view``,
``F.batch_norm`` ...) or by module type. Registering a rule for a custom layer takes a few lines::

    from netsculpt.graph import register_module_rule

    from netsculpt.graph.rules.common import channel_atoms

    @register_module_rule(MyGate)            # MyGate(x) = f(x) * self.scale, one scale per channel
    def my_gate(ctx, call):
        x, out = call.inputs[0], call.outputs[0]
        channels = channel_atoms(ctx, x, 1, call.where)                 # x's channel ids along dim 1
        ctx.couple(channels, ctx.member(call.params["scale"], 0, "out"), call.where)  # scale[i] is channel i
        out.labels, out.zero = x.labels, x.zero                          # channels pass straight through

A module with a rule is traced as one opaque step: the tracer does not look inside it. A class of a
library netsculpt does not import (Hugging Face's ``Conv1D``) is named by its full dotted name,
``"transformers.pytorch_utils.Conv1D"``: the rule applies to it and its subclasses once they exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from netsculpt.checks import refuse
from netsculpt.graph.builder import GraphBuilder, Value

Rule = Callable[[GraphBuilder, "Call"], None]

FUNCTION_RULES: dict[Any, Rule] = {}
PROPERTY_RULES: dict[str, Rule] = {}
MODULE_RULES: dict[type, Rule] = {}
MODULE_RULES_BY_NAME: dict[str, Rule] = {}  # "package.module.Class" -> rule, for classes never imported
_CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass
class Call:
    """One observed call: the function, its arguments with traced tensors replaced by ``Value``s."""

    func: Any
    name: str
    args: tuple
    kwargs: dict
    outputs: list[Value]
    module: str  # innermost module path, "" for the root
    module_obj: torch.nn.Module | None = None
    inputs: list[Value] = field(default_factory=list)  # every Value among args, in order
    params: dict[str, Value] = field(default_factory=dict)  # a module rule's own parameters and buffers

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """Positional-or-keyword argument lookup for builtins without inspectable signatures."""
        if name in self.kwargs:
            return self.kwargs[name]
        if index < len(self.args):
            return self.args[index]
        return default

    @property
    def where(self) -> str:
        return f"`{self.name}` in `{self.module or '<root>'}`"


def register_function_rule(*funcs: Any) -> Callable[[Rule], Rule]:
    """Register ``rule`` for each function object in ``funcs`` (aliases share one rule)."""

    def add(rule: Rule) -> Rule:
        for f in funcs:
            FUNCTION_RULES[f] = rule
        return rule

    return add


def register_property_rule(*names: str) -> Callable[[Rule], Rule]:
    """Register a rule for tensor properties that return tensors (``x.T``, ``x.mT`` ...)."""

    def add(rule: Rule) -> Rule:
        for n in names:
            PROPERTY_RULES[n] = rule
        return rule

    return add


def class_name(cls: type) -> str:
    """``"package.module.Class"``: how a class is named when netsculpt must not import its library."""
    return f"{cls.__module__}.{cls.__qualname__}"


def check_module_types(types: tuple, where: str) -> None:
    """Module classes, or their full dotted names (``"transformers.pytorch_utils.Conv1D"``)."""
    for t in types:
        named = isinstance(t, str) and _CLASS_NAME.match(t)
        if not named and not (isinstance(t, type) and issubclass(t, torch.nn.Module)):
            raise refuse(
                "types",
                t,
                "nn.Module subclasses (the classes, not instances) or their full dotted names "
                "('package.module.Class')",
                where,
            )


def register_module_rule(*types: type | str) -> Callable[[Rule], Rule]:
    """Register ``rule`` for modules of these types; such modules are traced as a single step.

    A type may be given by its full dotted name, so a rule for a library's layer needs no import of it."""
    check_module_types(types, "ns.register_module_rule")

    def add(rule: Rule) -> Rule:
        for t in types:
            if isinstance(t, str):
                MODULE_RULES_BY_NAME[t] = rule
            else:
                MODULE_RULES[t] = rule
        return rule

    return add


def module_rule_for(module: torch.nn.Module) -> Rule | None:
    for cls in type(module).__mro__:
        rule = MODULE_RULES.get(cls) or MODULE_RULES_BY_NAME.get(class_name(cls))
        if rule is not None:
            return rule
    return None


def tensor_methods(*names: str) -> list[Any]:
    """``torch.X``, ``torch.Tensor.X`` and in-place ``torch.Tensor.X_`` for each name that exists."""
    found = []
    for n in names:
        for owner in (torch, torch.Tensor, torch.nn.functional, torch.special, torch._C._nn):
            for candidate in (n, n + "_"):
                f = getattr(owner, candidate, None)
                if f is not None and f not in found:
                    found.append(f)
    return found
