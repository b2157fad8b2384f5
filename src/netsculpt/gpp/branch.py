"""Grow-Push-Prune's grow as the paper does it: an Inception-style *branch* beside a conv layer.

``grow_branch(model, x, {"conv2": "1x1:4"})`` puts a new conv (here 1x1, 4 filters) in parallel with
``conv2``, reading the same input, its output concatenated after ``conv2``'s channels. The branch sees
other receptive fields than the host (its own kernel size, centred on the host's windows, so the spatial
size matches), while the host's BatchNorm and activation, widened by the branch's channels, serve both:
conv → cat → BN → act, as in an Inception block. The widening is :func:`netsculpt.gpp.grow.grow_`'s, so
the consumers get zero weights for the branch channels and the grown model computes the original's
outputs (checked on the example inputs). The channel graph traces the concatenation, so old and new
channels form one prunable group: ``ns.prune`` chooses among them.

The host becomes a :class:`ConvBranches` (a plain module: ``main`` is the original conv, ``branches`` the
new ones); the ``grow_branch`` edit records what was grown, so ``ns.save``/``ns.load`` rebuild it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from netsculpt.edits.branch import MAX_BRANCHES, MAX_KERNEL
from netsculpt.edits.grow import MAX_GROW
from netsculpt.edits.inputs import layout_of
from netsculpt.errors import ConfigError, a_type
from netsculpt.gpp.grow import _check_same, _group_of, grow_
from netsculpt.graph.channel_graph import trace
from netsculpt.graph.tracing import as_tuple
from netsculpt.spec import append_step, ensure_base
from netsculpt.surgery.fixups import ModuleShapes, fixup

_SPEC = re.compile(r"^\s*(\d+)\s*(?:x\s*(\d+))?\s*:\s*(\d+)\s*$")


class ConvBranches(nn.Module):
    """``cat([main(x), branch_0(x'), ...], dim=1)``; ``x'`` is ``x`` cropped by ``crops[i]`` on each side.

    Why a crop: a branch with a smaller kernel than an unpadded host would need negative padding to give
    the same output size; cropping the input is that negative padding."""

    def __init__(self, main: nn.Conv2d, branches: list[nn.Conv2d], crops: list[tuple[int, int]]) -> None:
        super().__init__()
        self.main = main
        self.branches = nn.ModuleList(branches)
        self.crops = [tuple(c) for c in crops]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.main(x)]
        for branch, (ch, cw) in zip(self.branches, self.crops, strict=True):
            part = x[..., ch : x.shape[-2] - ch, cw : x.shape[-1] - cw] if ch or cw else x
            outs.append(branch(part))
        return torch.cat(outs, 1)


def parse_branch(layer: str, spec: Any) -> tuple[tuple[int, int], int]:
    """``"1x1:4"`` / ``"3:8"`` / ``{"kernel": [1, 1], "channels": 4}`` -> ((kh, kw), channels)."""
    if isinstance(spec, str):
        match = _SPEC.match(spec)
        if not match:
            raise ConfigError(f"branch for {layer!r}: expected KxK:CHANNELS such as '1x1:4', got {spec!r}")
        kh, kw, n = int(match[1]), int(match[2] or match[1]), int(match[3])
    elif isinstance(spec, Mapping) and set(spec) == {"kernel", "channels"}:
        kernel = spec["kernel"]
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        n = spec["channels"]
    else:
        raise ConfigError(f"branch for {layer!r}: give 'KxK:CHANNELS' or {{kernel, channels}}, got {spec!r}")
    for value, what, top in (
        (kh, "kernel", MAX_KERNEL),
        (kw, "kernel", MAX_KERNEL),
        (n, "channels", MAX_GROW),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise ConfigError(f"branch for {layer!r}: {what} must be an integer in 1..{top}, got {value!r}")
    return (kh, kw), n


Branch = tuple[tuple[int, int], int]  # (kernel (kh, kw), output channels)


def parse_branches(layer: str, spec: Any) -> list[Branch]:
    """One or more branches for ``layer``: ``"1x1:4,5x5:2"``, a list of specs, or one spec."""
    if isinstance(spec, str):
        parts: list[Any] = [part for part in spec.split(",") if part.strip()]
    elif isinstance(spec, list | tuple):
        parts = list(spec)
    else:
        parts = [spec]
    if not 1 <= len(parts) <= MAX_BRANCHES:
        raise ConfigError(f"branches for {layer!r}: give 1..{MAX_BRANCHES} specs, got {len(parts)}")
    parsed = [parse_branch(layer, part) for part in parts]
    if sum(n for _, n in parsed) > MAX_GROW:
        raise ConfigError(f"branches for {layer!r}: more than {MAX_GROW} channels in all")
    return parsed


def _padding(layer: str, host: nn.Conv2d, kernel: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The branch's padding and input crop that centre its windows on the host's, per spatial dim."""
    pads, crops = [], []
    for d in range(2):
        k, p, dil, kb = host.kernel_size[d], host.padding[d], host.dilation[d], kernel[d]
        twice = 2 * p - dil * (k - 1) + kb - 1  # 2 * branch padding for the same centres and size
        if twice % 2:
            raise ConfigError(
                f"cannot centre a {kernel[0]}x{kernel[1]} branch on {layer!r}'s "
                f"{host.kernel_size[0]}x{host.kernel_size[1]} windows (dilation {host.dilation}): the kernel "
                "sizes differ by an odd amount; use a kernel of the same parity"
            )
        pads.append(max(twice // 2, 0))
        crops.append(max(-twice // 2, 0))
    return (pads[0], pads[1]), (crops[0], crops[1])


def _host(model: nn.Module, layer: str) -> nn.Conv2d:
    host = dict(model.named_modules()).get(layer)
    if type(host) is not nn.Conv2d:
        what = "no module" if host is None else a_type(host)
        hint = "; give all its branches in one call ('1x1:4,5x5:2')" if isinstance(host, ConvBranches) else ""
        raise ConfigError(f"cannot grow a branch on {layer!r}: it is {what}, not an nn.Conv2d{hint}")
    if host.groups != 1:
        raise ConfigError(f"cannot grow a branch on the grouped convolution {layer!r} (groups={host.groups})")
    if isinstance(host.padding, str):
        raise ConfigError(
            f"cannot grow a branch on {layer!r}: padding={host.padding!r}; give numeric padding"
        )
    return host


def _split_(model: nn.Module, layer: str, out: int, specs: list[Branch], gen: torch.Generator) -> None:
    """Turn the widened host (``out`` old filters + new ones) into main + branches of other kernels."""
    host = _host(model, layer)
    weight = host.weight.detach()
    std = float(weight[:out].float().std()) if weight[:out].numel() > 1 else 1.0
    branches, crops = [], []
    for kernel, n in specs:
        pad, crop = _padding(layer, host, kernel)
        bias = host.bias is not None
        branch = nn.Conv2d(host.in_channels, n, kernel, stride=host.stride, padding=pad, bias=bias)
        with torch.no_grad():
            branch.weight.copy_(torch.randn(branch.weight.shape, generator=gen) * (std or 1.0))
            if branch.bias is not None:
                branch.bias.zero_()
        branches.append(branch.to(device=weight.device, dtype=weight.dtype))
        crops.append(crop)
    host.weight = nn.Parameter(weight[:out].clone(), requires_grad=host.weight.requires_grad)
    if host.bias is not None:
        host.bias = nn.Parameter(host.bias.detach()[:out].clone(), requires_grad=host.bias.requires_grad)
    fixup(host, ModuleShapes([], []))
    parent_name, _, attr = layer.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    wrapped = ConvBranches(host, branches, crops)
    if isinstance(parent, nn.Sequential | nn.ModuleList | nn.ModuleDict):
        parent[int(attr) if not isinstance(parent, nn.ModuleDict) else attr] = wrapped
    else:
        setattr(parent, attr, wrapped)


def grow_branch(
    model: nn.Module, example_inputs: Any, branches: Mapping[str, Any], *, seed: int = 0,
    inplace: bool = False, atol: float = 1e-5,
) -> nn.Module:  # fmt: skip
    """A copy of ``model`` (or ``model`` itself) with a parallel conv branch beside each named conv,
    e.g. ``{"conv2": "1x1:4"}`` (several: ``"1x1:4,5x5:2"``), computing the same outputs on
    ``example_inputs`` (checked to ``atol``).

    Refused, with the reason: a layer that is not a plain ungrouped ``nn.Conv2d``; a host whose channels
    are tied to other layers' (a residual stage: grow its block-internal convs instead, or widen the
    stage with ``grow``); a kernel that cannot be centred on the host's windows."""
    parsed = {layer: parse_branches(layer, spec) for layer, spec in branches.items()}
    inputs = as_tuple(example_inputs)
    graph = trace(model, inputs)
    for layer in parsed:
        _host(model, layer)
        producers = {
            m.module
            for m in _group_of(graph, layer).members
            if m.role == "out" and m.dim == 0 and m.name.endswith(".weight")
            and isinstance(model.get_submodule(m.module), nn.modules.conv._ConvNd | nn.Linear)
        }  # fmt: skip
        if producers != {layer}:
            raise ConfigError(
                f"cannot grow a branch on {layer!r}: its output channels are tied to "
                f"{', '.join(sorted(producers - {layer}))} (a residual sum?), so a branch would have to "
                "feed all of them; grow a layer inside the block, or widen the stage with grow()"
            )
        for kernel, _ in parsed[layer]:
            _padding(layer, _host(model, layer), kernel)
    target = model if inplace else copy.deepcopy(model)
    ensure_base(target)
    was = target.training
    target.eval()
    with torch.no_grad():
        before = target(*inputs)
    outs = {layer: _host(target, layer).out_channels for layer in parsed}
    grow_(target, graph, {layer: sum(n for _, n in specs) for layer, specs in parsed.items()}, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    for layer, specs in parsed.items():
        _split_(target, layer, outs[layer], specs, gen)
    with torch.no_grad():
        after = target(*inputs)
    target.train(was)
    _check_same(before, after, atol, list(parsed))
    record = {name: [{"kernel": list(k), "channels": n} for k, n in specs] for name, specs in parsed.items()}
    step: dict[str, Any] = {"kind": "grow_branch", "branches": record, "seed": seed,
                            "input_shapes": [list(s) for s in graph.input_shapes]}  # fmt: skip
    layout = layout_of(inputs)
    if layout is not None:
        step["inputs"] = layout
    append_step(target, step)
    return target
