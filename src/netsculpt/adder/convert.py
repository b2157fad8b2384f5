"""Turn a CNN into an adder network: its ``nn.Conv2d`` layers become :class:`AdderConv2d`.

AdderNet keeps the first and the last weight layer multiplicative (they see raw pixels and produce the
logits, and hold a tiny share of the operations) and puts batch norm after every adder layer, since an
adder's outputs are large negative distances. A conv whose output already feeds only a ``BatchNorm2d``
keeps that BN; any other becomes ``Sequential(AdderConv2d, BatchNorm2d)``. The conversion is recorded as
an ``adder`` edit (:mod:`netsculpt.edits.adder`), so ``ns.save`` / ``ns.load`` rebuild the same layers.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
import torch.fx
from torch import nn

from netsculpt import checks
from netsculpt.adder.layer import DEFAULT_ETA, AdderConv2d
from netsculpt.errors import CheckpointError, ConfigError, a_type
from netsculpt.spec import append_step, ensure_base

KEEP_WORDS = ("first", "last")


def _weight_layers(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if n and isinstance(m, nn.Conv2d | nn.Linear)]


def _resolve_keep(model: nn.Module, keep: Iterable[str]) -> set[str]:
    layers = _weight_layers(model)
    names = dict(model.named_modules())
    kept: set[str] = set()
    for item in keep:
        if item in KEEP_WORDS:
            if layers:
                kept.add(layers[0] if item == "first" else layers[-1])
        elif item in names:
            kept.add(item)
        else:
            raise ConfigError(
                f"to_adder keep={item!r} is neither 'first', 'last' nor a layer of {type(model).__name__}; "
                f"layers: {', '.join(layers[:12])}{' ...' if len(layers) > 12 else ''}"
            )
    return kept


def _feeds_only_bn(model: nn.Module) -> dict[str, bool]:
    """Conv name → whether its output goes only into a BatchNorm2d (torch.fx; untraceable: all False)."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # data-dependent control flow etc.: add a BN to every adder, which is always safe
        return {}
    modules = dict(model.named_modules())
    found = {}
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(modules.get(str(node.target)), nn.Conv2d):
            users = list(node.users)
            found[str(node.target)] = bool(users) and all(
                u.op == "call_module" and isinstance(modules.get(str(u.target)), nn.BatchNorm2d)
                for u in users
            )
    return found


def _convertible(conv: nn.Conv2d) -> str | None:
    """Why ``conv`` cannot become an adder layer (None: it can)."""
    if conv.groups != 1:
        return f"groups={conv.groups}"
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return f"padding={conv.padding!r} / padding_mode={conv.padding_mode!r}"
    return None


def _adder_for(conv: nn.Conv2d, eta: float, add_bn: bool) -> nn.Module:
    adder = AdderConv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        eta=eta,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    if not add_bn:
        return adder
    bn = nn.BatchNorm2d(conv.out_channels).to(device=conv.weight.device, dtype=conv.weight.dtype)
    return nn.Sequential(adder, bn)


def _replace(model: nn.Module, layers: list[dict[str, Any]], eta: float) -> None:
    """Swap each named conv for its adder layer; a conv registered under several names (the same
    module object) gets one adder layer under all of them, so it stays shared."""
    made: dict[int, nn.Module] = {}
    for layer in layers:
        name = layer["name"]
        try:
            conv = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(
                f"the saved adder conversion names layer {name!r}, which the model lacks"
            ) from None
        if id(conv) in made:
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, made[id(conv)])
            continue
        if not isinstance(conv, nn.Conv2d) or _convertible(conv) is not None:
            raise CheckpointError(
                f"the saved adder conversion names {name!r}, {a_type(conv)} that is not an "
                "ungrouped zero-padded Conv2d"
            )
        parent, _, attr = name.rpartition(".")
        made[id(conv)] = _adder_for(conv, eta, layer["bn"])
        setattr(model.get_submodule(parent), attr, made[id(conv)])


def to_adder_(
    model: nn.Module,
    keep: Iterable[str] | None = KEEP_WORDS,
    eta: float = DEFAULT_ETA,
    copy_filters: bool = False,
) -> list[str]:
    """Convert ``model`` in place (see :func:`to_adder`); returns the converted layer names."""
    checks.materialised(checks.module(model, where="ns.to_adder"), "convert", then="pass it to ns.to_adder")
    keep = checks.names(
        keep, "keep", "ns.to_adder", accepted="'first', 'last', module names (one or a list) or None"
    )
    checks.number(eta, "eta", "ns.to_adder")
    checks.flag(copy_filters, "copy_filters", "ns.to_adder")
    kept = _resolve_keep(model, keep)
    only_bn = _feeds_only_bn(model)
    layers, first_name = [], {}
    # every name a module is registered under: a conv used under two names must not stay a conv in one
    for name, module in model.named_modules(remove_duplicate=False):
        inside_kept = any(name == k or name.startswith(k + ".") for k in kept)
        if not name or not isinstance(module, nn.Conv2d) or inside_kept or _convertible(module):
            continue
        primary = first_name.setdefault(id(module), name)
        layers.append({"name": name, "bn": not only_bn.get(primary, False)})
    if not layers:
        raise ConfigError(
            f"to_adder found no Conv2d to convert in {type(model).__name__} (kept: {sorted(kept)}; grouped "
            "or non-zero-padded convs are skipped); pass keep=[] to convert the first/last conv too"
        )
    ensure_base(model)
    convs = {layer["name"]: model.get_submodule(layer["name"]) for layer in layers}
    _replace(model, layers, eta)
    if copy_filters:
        with torch.no_grad():
            for name, conv in convs.items():
                module = model.get_submodule(name)
                adder = module[0] if isinstance(module, nn.Sequential) else module
                adder.weight.copy_(conv.weight)
    append_step(model, {"kind": "adder", "eta": float(eta), "layers": layers})
    return [layer["name"] for layer in layers]


def to_adder(
    model: nn.Module,
    keep: Iterable[str] | None = KEEP_WORDS,
    eta: float = DEFAULT_ETA,
    copy_filters: bool = False,
) -> nn.Module:
    """A copy of ``model`` whose convolutions (except ``keep``) are adder layers, untrained.

    ``keep`` names layers to leave multiplicative: ``"first"`` / ``"last"`` are the first and last weight
    layer (conv or linear) in module order, as in the paper; other items are module names (a block
    keeps every conv inside it). ``keep=None`` or ``[]`` keeps none: every convertible conv becomes an
    adder. The adder
    filters start from a fresh Kaiming init (a trained conv's filters are no good as L1 templates): train
    the result, alone or with :class:`netsculpt.adder.PKKDLoss`. ``copy_filters=True`` starts them from
    the convs' filters instead: for an untrained CNN that is the same Kaiming draw, and it lets a PKKD
    teacher that starts as that CNN have channels that correspond to the student's (the kernel loss
    matches them channel by channel).
    """
    checks.materialised(checks.module(model, where="ns.to_adder"), "convert", then="pass it to ns.to_adder")
    copied = copy.deepcopy(model)
    to_adder_(copied, keep, eta, copy_filters)
    return copied


def replay_adder_(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Give a rebuilt base model the adder layers a saved conversion recorded (weights load after)."""
    ensure_base(model)
    _replace(model, edit["layers"], edit["eta"])
    append_step(model, copy.deepcopy(edit))
    return model
