"""The coverage check every architecture must pass: prune 50% per group, exactly."""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.graph import ChannelGraph, trace
from netsculpt.graph.explain import pinned_macs
from netsculpt.measure import count_macs
from netsculpt.surgery import apply_plan_, mask_
from netsculpt.surgery.verify import random_plan

# float32 through dozens of layers stays around 1e-6 relative error; the bound is 1e-4
TOLERANCE = 1e-4


def make_nontrivial_(model: nn.Module) -> nn.Module:
    """Zero-initialised heads (ViT) and unit BN statistics would make the comparison vacuous."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
        for p in model.parameters():
            if p.numel() and p.abs().max() == 0:
                p.normal_(0, 0.02, generator=g)
    return model.eval()


def _probe_like(x: torch.Tensor) -> torch.Tensor:
    """A second input like ``x``: token ids stay ids, in the range the example used."""
    g = torch.Generator().manual_seed(1)
    if x.is_floating_point():
        return torch.randn(x.shape, generator=g)
    return torch.randint(int(x.min()), int(x.max()) + 1, x.shape, generator=g, dtype=x.dtype)


def output_tensor(out: object) -> torch.Tensor:
    """What to compare: the model's tensor, or the ``logits`` of a Hugging Face ``ModelOutput`` (its KV
    cache and hidden states are other tensors of the same call, not the prediction)."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise TypeError(f"cannot compare a {type(out).__name__}: return a tensor or an output with .logits")


def _nothing_prunable(model: nn.Module, graph: ChannelGraph, x: torch.Tensor) -> None:
    """Say why, layer by layer, as the timm sweep prints it."""
    why = [str(p) for p in pinned_macs(graph, count_macs(model, x)[1])]
    raise AssertionError("nothing prunable:\n" + "\n".join(why or [str(graph)]))


def check_prunes_exactly(model: nn.Module, x: torch.Tensor) -> dict[str, object]:
    """Masked original vs pruned model on one input; the model is pruned in place (no copy needed:
    surgery removes exactly the slices masking zeroed)."""
    model = make_nontrivial_(model)
    graph = trace(model, x)
    plan = random_plan(graph, 0.5, seed=0)
    if not plan.keep:
        _nothing_prunable(model, graph, x)
    macs_before = count_macs(model, x)[0]
    probe = _probe_like(x)
    mask_(model, graph, plan)
    with torch.no_grad():
        reference = output_tensor(model(probe))
    apply_plan_(model, graph, plan)
    with torch.no_grad():
        pruned = output_tensor(model(probe))
    assert pruned.shape == reference.shape
    assert torch.isfinite(reference).all()
    err = float((pruned - reference).norm() / reference.norm().clamp_min(1e-12))
    assert err <= TOLERANCE, f"relative error {err:.2e}"
    macs_after, layers = count_macs(model, x)
    assert macs_after < macs_before
    return {
        "err": err,
        "macs_ratio": macs_after / macs_before,
        **_why(graph, layers, macs_after / macs_before),
    }


def check_prunes_inexactly(model: nn.Module, x: torch.Tensor) -> dict[str, object]:
    """``allow_inexact=True``: the function may change, but the pruned model must run, keep its output
    shape and shrink (normalised and attention channels are opened, so surgery meets more op kinds)."""
    model = make_nontrivial_(model)
    graph = trace(model, x, allow_inexact=True)
    plan = random_plan(graph, 0.5, seed=0)
    if not plan.keep:
        _nothing_prunable(model, graph, x)
    with torch.no_grad():
        reference = output_tensor(model(x))
    macs_before = count_macs(model, x)[0]
    apply_plan_(model, graph, plan)
    with torch.no_grad():
        pruned = output_tensor(model(x))
    assert pruned.shape == reference.shape
    assert torch.isfinite(pruned).all()
    macs_after, layers = count_macs(model, x)
    assert macs_after < macs_before
    return {"macs_ratio": macs_after / macs_before, **_why(graph, layers, macs_after / macs_before)}


def _why(graph: ChannelGraph, layers: list, ratio: float) -> dict[str, list[str]]:
    """The engine's reasons for a ratio above 0.7x (nothing below: those need no explaining)."""
    if ratio <= 0.7:
        return {}
    return {"why": [str(p) for p in pinned_macs(graph, layers)] or ["no pinned weight layer holds MACs"]}
