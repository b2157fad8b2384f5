"""DepthShrinker-style activation removal: learn which activations to drop, then merge what is left linear.

Every activation module called once gets a gate logit; during a short training the forward is
``m·act(x) + (1-m)·x`` with ``m`` the hard top-``keep`` mask of the logits (straight-through: gradients
flow through ``sigmoid(logit)``), so exactly ``keep`` activations are on at every step (the budget). The
dropped ones become ``nn.Identity`` (the ``drop_activations`` edit, plain data), the model is fine-tuned
by the caller, and :func:`netsculpt.depth.fold` then merges the convs that no activation separates any
more (a 3×3 into the 1×1 after it, BatchNorms first).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import torch
from torch import nn

from netsculpt.errors import PruningError
from netsculpt.graph import trace
from netsculpt.logits import logits_of
from netsculpt.spec import append_step, ensure_base
from netsculpt.surgery.depth import set_module

_ACTS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.LeakyReLU)


def activations(model: nn.Module, example_inputs: Any) -> list[str]:
    """Activation modules run exactly once (a shared ``self.relu`` cannot be dropped in one place)."""
    graph = trace(model, example_inputs)
    calls = graph.builder.module_calls
    return [n for n, m in model.named_modules() if isinstance(m, _ACTS) and len(calls.get(n, [])) == 1]


class _Gated(nn.Module):
    """Training-time stand-in, removed before the model is returned."""

    def __init__(self, act: nn.Module, owner: _Gates, index: int) -> None:
        super().__init__()
        self.act, self.owner, self.index = act, [owner], index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.owner[0].mask()[self.index]
        return m * self.act(x) + (1 - m) * x


class _Gates(nn.Module):
    def __init__(self, n: int, keep: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.full((n,), 2.0) + 0.01 * torch.randn(n))
        self.keep = keep

    def mask(self) -> torch.Tensor:
        soft = torch.sigmoid(self.logits)
        hard = torch.zeros_like(soft)
        hard[torch.topk(self.logits, self.keep).indices] = 1.0
        return hard + soft - soft.detach()  # straight-through


def drop_activations(model: nn.Module, names: list[str], *, inplace: bool = False) -> nn.Module:
    """Replace the named activation modules by ``nn.Identity`` and record the edit."""
    target = model if inplace else copy.deepcopy(model)
    modules = dict(target.named_modules())
    for name in names:
        if name not in modules or not isinstance(modules[name], (*_ACTS, nn.Identity)):
            raise PruningError(f"{name!r} is not an activation module of this model")
    ensure_base(target)
    for name in names:
        set_module(target, name, nn.Identity())
    append_step(target, {"kind": "drop_activations", "modules": list(names)})
    return target


def learn_drops(
    model: nn.Module, example_inputs: Any, train: Any, *, drop: int, steps: int = 100, lr: float = 0.01
) -> list[str]:
    """Which ``drop`` activations to remove, learnt with the gate above on ``train`` batches."""
    names = activations(model, example_inputs)
    if not 0 < drop < len(names) + 1:
        raise PruningError(f"drop={drop}: this model has {len(names)} activations that run once")
    trial = copy.deepcopy(model)
    gates = _Gates(len(names), len(names) - drop)
    for i, name in enumerate(names):
        set_module(trial, name, _Gated(trial.get_submodule(name), gates, i))
    opt = torch.optim.SGD([*trial.parameters(), gates.logits], lr=lr, momentum=0.9)
    trial.train()
    for batch in itertools.islice(itertools.cycle(train), steps):
        loss = nn.functional.cross_entropy(logits_of(trial(batch[0])), batch[1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    order = torch.argsort(gates.logits.detach())
    return [names[int(i)] for i in order[:drop]]
