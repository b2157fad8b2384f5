"""Layers whose weight is computed in ``forward`` from other tensors (weight norm, a
``torch.nn.utils.prune`` mask, any ``parametrize`` parametrization).

The channel graph cannot map such a weight back to parameter slices, so these layers keep every
channel; this module names them and the call that turns each back into a plain layer (the layer
computes the same function after it). The hook-based kinds (``torch.nn.utils.weight_norm``,
``torch.nn.utils.prune``) also leave a non-leaf tensor on the module after a forward, which
``copy.deepcopy`` (and so pruning) cannot copy: those are refused before surgery.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from netsculpt.errors import NetsculptWarning, PruningError, warn_user

_SHOWN = 4  # layers spelled out in a message; the rest are counted


@dataclass(frozen=True)
class Reparam:
    """One layer tensor computed in forward: what computes it and the call that removes it."""

    layer: str
    what: str
    fix: str
    hook: bool  # a forward pre-hook (deep copies fail after a forward), not a parametrization


def _parametrization(layer: str, tensor: str, kinds: list[nn.Module]) -> Reparam:
    names = [type(p).__name__ for p in kinds]
    where = f"model.get_submodule({layer!r})"
    if "_Mask" in names and all(type(p).__module__ == "netsculpt.sparsity.masks" for p in kinds):
        return Reparam(layer, "a netsculpt sparsity mask", "netsculpt.sparsity.remove_masks_(model)", False)
    if "DKMWeight" in names:
        return Reparam(layer, "DKM weight clustering", "netsculpt.weights.snap_dkm_(model)", False)
    what = {"_WeightNorm": "weight_norm", "_SpectralNorm": "spectral_norm", "_Orthogonal": "orthogonal"}
    label = ", ".join(what.get(n, n) for n in names)
    return Reparam(
        layer,
        f"torch.nn.utils.parametrizations ({label}) on `{tensor}`",
        f"torch.nn.utils.parametrize.remove_parametrizations({where}, {tensor!r})",
        False,
    )


def _hooks(layer: str, module: nn.Module) -> list[Reparam]:
    where = f"model.get_submodule({layer!r})"
    out = []
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, torch_prune.BasePruningMethod):
            name = hook._tensor_name
            fix = f"torch.nn.utils.prune.remove({where}, {name!r})"
            out.append(Reparam(layer, f"a torch.nn.utils.prune mask on `{name}`", fix, True))
        elif isinstance(hook, WeightNorm):
            fix = f"torch.nn.utils.remove_weight_norm({where}, {hook.name!r})"
            out.append(Reparam(layer, f"torch.nn.utils.weight_norm on `{hook.name}`", fix, True))
        elif isinstance(hook, SpectralNorm):
            fix = f"torch.nn.utils.remove_spectral_norm({where}, {hook.name!r})"
            out.append(Reparam(layer, f"torch.nn.utils.spectral_norm on `{hook.name}`", fix, True))
    return out


def weight_reparams(model: nn.Module) -> list[Reparam]:
    """Every layer tensor of ``model`` that a parametrization or a reparametrizing hook computes."""
    found = []
    for layer, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for tensor, kinds in module.parametrizations.items():
                found.append(_parametrization(layer, tensor, list(kinds)))
        found += _hooks(layer, module)
    return found


def describe(found: list[Reparam]) -> str:
    """The layers, what computes their weight, and the calls that turn them back into plain layers."""
    shown = "; ".join(f"`{r.layer or 'model'}` ({r.what})" for r in found[:_SHOWN])
    more = f" and {len(found) - _SHOWN} more" if len(found) > _SHOWN else ""
    fixes = list(dict.fromkeys(r.fix for r in found))
    calls = "; ".join(fixes[:_SHOWN])
    if len(fixes) > _SHOWN:
        calls += f" (and the same for the other {len(fixes) - _SHOWN})"
    return f"{shown}{more}. Remove it first (the layer computes the same function after): {calls}"


def warn_reparams(model: nn.Module, ignored: tuple[str, ...] = ()) -> None:
    """Tell the user which layers keep all their channels because their weight is computed in forward
    (not those under ``ignored``: they were to keep their channels anyway)."""
    found = [
        r
        for r in weight_reparams(model)
        if not any(r.layer == n or r.layer.startswith(n + ".") for n in ignored)
    ]
    if found:
        warn_user(
            "these layers compute their weight in forward, so netsculpt cannot slice it and keeps all their "
            f"channels: {describe(found)}",
            NetsculptWarning,
        )


def refuse_hooked(model: nn.Module) -> None:
    """Refuse hook-based reparametrizations before surgery: the copy pruning makes would fail inside
    ``copy.deepcopy`` with a torch error that names neither the layer nor the fix."""
    found = [r for r in weight_reparams(model) if r.hook]
    if found:
        raise PruningError(
            f"cannot prune a model with reparametrizing forward pre-hooks, which a copy of the model "
            f"cannot carry: {describe(found)}"
        )
