"""Which layers to draw by default, read from one eval forward rather than from the module tree.

Definition order misleads on models a test never named: torchvision's GoogLeNet defines its auxiliary
heads (which run only in training) after the trunk, so "the last convs" never ran; a Bottleneck ResNet
shares one ``relu`` module whose first call follows ``bn1``, so "the activation defined after conv3"
read a 512-channel map instead of the block's 2048. One forward pass with hooks on the leaf modules
gives the order layers actually run in and which module consumed whose output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from netsculpt.checks import materialised
from netsculpt.errors import ConfigError
from netsculpt.modes import module_modes, restore_modes

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Hardswish, nn.ELU, nn.Mish)
NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.Identity)


@dataclass
class RunOrder:
    """Leaf modules in the order an eval forward first called them; per module, the module whose
    output its first call read (None: a functional op's or the input's)."""

    order: list[str] = field(default_factory=list)
    fed_by: dict[str, str | None] = field(default_factory=dict)


def run_order(model: nn.Module, shape: tuple[int, ...]) -> RunOrder:
    """One forward of zeros of ``shape`` (batch of one) in eval mode, hooks removed afterwards."""
    materialised(model, "choose layers to explain in", then="explain it")
    leaves = {}
    for name, module in model.named_modules():
        if not any(True for _ in module.children()):
            leaves.setdefault(module, name)  # a module registered twice keeps its first name
    seen = RunOrder()
    made_by: dict[int, tuple[Tensor, str]] = {}  # tensor id -> (tensor, kept alive so ids stay unique)

    def record(module: nn.Module, args: tuple, output: object) -> None:
        name = leaves[module]
        if name not in seen.fed_by:
            seen.order.append(name)
            first = args[0] if args and isinstance(args[0], Tensor) else None
            source = made_by.get(id(first)) if first is not None else None
            seen.fed_by[name] = source[1] if source is not None and source[0] is first else None
        if isinstance(output, Tensor):
            made_by[id(output)] = (output, name)

    handles = [m.register_forward_hook(record) for m in leaves]
    modes = module_modes(model)
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *shape[1:])))
    except Exception as exc:
        raise ConfigError(
            f"could not run the model once to choose its layers ({type(exc).__name__}: {exc}); "
            "pass --layers NAME[,NAME]"
        ) from None
    finally:
        for handle in handles:
            handle.remove()
        restore_modes(modes)
    return seen


def after_activation(model: nn.Module, seen: RunOrder, conv: str) -> str:
    """The activation whose first call read ``conv``'s output (past its norm), else ``conv``: maps are
    read after the nonlinearity, as the papers do, and a shared activation module is explained at its
    first call (:func:`netsculpt.explain.capture.capture`), so only a first call that follows this conv
    counts (a Bottleneck's shared ``relu`` first follows ``bn1``, never ``bn3``)."""
    modules = dict(model.named_modules())
    source = conv
    for name in seen.order[seen.order.index(conv) + 1 :]:
        if seen.fed_by.get(name) != source:
            continue
        if isinstance(modules[name], NORMS):
            source = name
        elif isinstance(modules[name], ACTIVATIONS):
            return name
        else:
            break
    return conv


def ran_convs(model: nn.Module, seen: RunOrder) -> list[str]:
    """The Conv2d (and AdderConv2d) layers that ran, in the order they first ran."""
    from netsculpt.adder.layer import AdderConv2d

    modules = dict(model.named_modules())
    return [n for n in seen.order if isinstance(modules[n], nn.Conv2d | AdderConv2d)]
