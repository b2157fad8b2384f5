"""Low-rank factorisation: SVD for Linear, Tucker-2 or spatial SVD for convolutions, then fine-tune.

A layer is replaced by a short chain of thinner layers whose product approximates its weight. The
rank keeps a fraction ``energy`` of the squared singular values (``1 - energy`` is then exactly the
relative squared reconstruction error for SVD) or meets a per-layer MACs budget ``macs_ratio``.
Factorised layers are plain ``nn.Sequential`` chains, so every runtime runs them unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from netsculpt.checks import materialised
from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.layer_kinds import is_linear, linear_features, out_in
from netsculpt.spec import append_step, ensure_base
from netsculpt.train import TrainConfig, train
from netsculpt.weights.config import FilterFn

CONV_METHODS = ("tucker2", "spatial")


def _default_train() -> TrainConfig:
    return TrainConfig(epochs=3, lr=0.005, warmup_epochs=0)


@dataclass
class LowRankConfig:
    """One of ``energy`` (fraction in (0, 1]; 0.9 when neither is given) and ``macs_ratio`` (in (0, 1))."""

    energy: float | None = None
    macs_ratio: float | None = None
    conv_method: str = "tucker2"
    min_rank: int = 1
    train: TrainConfig = field(default_factory=_default_train)
    filter_fn: FilterFn | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.energy is not None and self.macs_ratio is not None:
            raise ConfigError("set exactly one of energy (e.g. 0.9) and macs_ratio (e.g. 0.5)")
        if self.energy is None and self.macs_ratio is None:
            self.energy = 0.9  # the default; LowRankConfig(macs_ratio=0.5) alone was refused as "both set"
        if self.energy is not None and not 0 < self.energy <= 1:
            raise ConfigError(f"energy must be in (0, 1], got {self.energy!r}")
        if self.macs_ratio is not None and not 0 < self.macs_ratio < 1:
            raise ConfigError(f"macs_ratio must be in (0, 1), got {self.macs_ratio!r}")
        if self.conv_method not in CONV_METHODS:
            raise ConfigError(
                f"conv_method must be one of {', '.join(CONV_METHODS)}, got {self.conv_method!r}"
            )


@dataclass
class Factorised:
    """What happened to one layer: ranks, retained energy per factorised mode, parameter counts."""

    name: str
    kind: str
    ranks: tuple[int, ...]
    energy: tuple[float, ...]
    params_before: int
    params_after: int


def rank_for_energy(singular: Tensor, energy: float) -> int:
    """Smallest rank whose singular values keep ``energy`` of the total squared sum."""
    power = singular.double().square()
    cumulative = power.cumsum(0) / power.sum().clamp_min(1e-300)
    rank = int(torch.searchsorted(cumulative, torch.tensor(energy, dtype=torch.float64) - 1e-12)) + 1
    return min(rank, len(singular))  # an all-zero layer has no energy to keep: every rank "keeps" it


def retained(singular: Tensor, rank: int) -> float:
    power = singular.double().square()
    return float(power[:rank].sum() / power.sum().clamp_min(1e-300))


def svd_linear(layer: nn.Module, rank: int) -> nn.Sequential:
    """``W ~ (U sqrt(S)) (sqrt(S) V^T)``: Linear(in, rank) then Linear(rank, out) with the bias.

    ``layer`` is an ``nn.Linear`` or a Hugging Face ``Conv1D`` (weight stored (in, out)): same chain."""
    u, s, vh = torch.linalg.svd(out_in(layer, layer.weight.detach()).double(), full_matrices=False)
    root = s[:rank].sqrt()
    in_features, out_features = linear_features(layer)
    first = nn.Linear(in_features, rank, bias=False)
    second = nn.Linear(rank, out_features, bias=layer.bias is not None)
    with torch.no_grad():
        first.weight.copy_(root[:, None] * vh[:rank])
        second.weight.copy_(u[:, :rank] * root)
        if layer.bias is not None:
            second.bias.copy_(layer.bias)
    return nn.Sequential(first, second)


def _plain_conv(conv: nn.Conv2d) -> bool:
    """Ungrouped, with numeric zero padding: what the conv chains reproduce."""
    return conv.groups == 1 and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


def _check_conv(conv: nn.Conv2d) -> None:
    if not _plain_conv(conv):
        raise ConfigError("only ungrouped Conv2d layers with numeric zero padding can be factorised")


def spatial_matrix(conv: nn.Conv2d) -> Tensor:
    """``M[(i, y), (o, x)] = W[o, i, y, x]``: a kh x 1 conv then a 1 x kw conv is a rank split of M."""
    o, i, kh, kw = conv.weight.shape
    return conv.weight.detach().double().permute(1, 2, 0, 3).reshape(i * kh, o * kw)


def spatial_svd_conv(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """Jaderberg et al.'s spatial SVD: (kh x 1, rank channels) then (1 x kw, out channels)."""
    _check_conv(conv)
    o, i, kh, kw = conv.weight.shape
    u, s, vh = torch.linalg.svd(spatial_matrix(conv), full_matrices=False)
    root = s[:rank].sqrt()
    vertical = nn.Conv2d(
        i,
        rank,
        (kh, 1),
        stride=(conv.stride[0], 1),
        padding=(conv.padding[0], 0),
        dilation=(conv.dilation[0], 1),
        bias=False,
    )
    horizontal = nn.Conv2d(
        rank,
        o,
        (1, kw),
        stride=(1, conv.stride[1]),
        padding=(0, conv.padding[1]),
        dilation=(1, conv.dilation[1]),
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        vertical.weight.copy_((u[:, :rank] * root).reshape(i, kh, rank).permute(2, 0, 1).unsqueeze(-1))
        horizontal.weight.copy_(
            (root[:, None] * vh[:rank]).reshape(rank, o, kw).permute(1, 0, 2).unsqueeze(2)
        )
        if conv.bias is not None:
            horizontal.bias.copy_(conv.bias)
    return nn.Sequential(vertical, horizontal)


def mode_svd(conv: nn.Conv2d) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Left singular vectors and values of the output-mode and input-mode unfoldings of the kernel."""
    w = conv.weight.detach().double()
    u_out, s_out, _ = torch.linalg.svd(w.flatten(1), full_matrices=False)
    u_in, s_in, _ = torch.linalg.svd(w.transpose(0, 1).flatten(1), full_matrices=False)
    return (u_out, s_out), (u_in, s_in)


def tucker2_conv(conv: nn.Conv2d, rank_out: int, rank_in: int) -> nn.Sequential:
    """Tucker-2 (HOSVD on the channel modes): 1x1 to ``rank_in``, kh x kw core, 1x1 to out channels."""
    _check_conv(conv)
    (u_out, _), (u_in, _) = mode_svd(conv)
    u_out, u_in = u_out[:, :rank_out], u_in[:, :rank_in]
    core = torch.einsum("oikl,or,is->rskl", conv.weight.detach().double(), u_out, u_in)
    first = nn.Conv2d(conv.in_channels, rank_in, 1, bias=False)
    middle = nn.Conv2d(
        rank_in,
        rank_out,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        bias=False,
    )
    last = nn.Conv2d(rank_out, conv.out_channels, 1, bias=conv.bias is not None)
    with torch.no_grad():
        first.weight.copy_(u_in.T[:, :, None, None])
        middle.weight.copy_(core)
        last.weight.copy_(u_out[:, :, None, None])
        if conv.bias is not None:
            last.bias.copy_(conv.bias)
    return nn.Sequential(first, middle, last)


def _budget_rank(per_rank: float, full: float, ratio: float, cap: int) -> int:
    return max(1, min(cap, int(ratio * full / per_rank)))


def _factorisable(module: nn.Module) -> bool:
    """A Linear, or a Conv2d the chains can reproduce (ungrouped, numeric zero padding), with some
    weight: checked before anything changes, so one odd layer cannot stop the model half-factorised."""
    plain = _plain_conv(module) if isinstance(module, nn.Conv2d) else is_linear(module)
    return plain and bool(module.weight.detach().abs().sum() > 0)


def _factorise(module: nn.Module, name: str, config: LowRankConfig) -> tuple[nn.Module, Factorised] | None:
    if not _factorisable(module):
        return None
    before = sum(p.numel() for p in module.parameters())
    energy, ratio = config.energy, config.macs_ratio
    if is_linear(module):
        s = torch.linalg.svdvals(module.weight.detach().double())
        i, o = linear_features(module)
        r = rank_for_energy(s, energy) if energy is not None else _budget_rank(o + i, o * i, ratio, len(s))
        r = max(r, config.min_rank)
        new, ranks, kept, kind = svd_linear(module, r), (r,), (retained(s, r),), "svd"
    else:  # a plain Conv2d (_factorisable)
        o, i, kh, kw = module.weight.shape
        sh, sw = module.stride
        if config.conv_method == "spatial":
            s = torch.linalg.svdvals(spatial_matrix(module))
            per_rank = i * kh * sw + o * kw  # the kh x 1 conv runs at the input's width (stride sw)
            r = (
                rank_for_energy(s, energy)
                if energy is not None
                else _budget_rank(per_rank, o * i * kh * kw, ratio, len(s))
            )
            r = max(r, config.min_rank)
            new, ranks, kept, kind = spatial_svd_conv(module, r), (r,), (retained(s, r),), "spatial"
        else:
            (_, s_out), (_, s_in) = mode_svd(module)
            if energy is not None:
                r_out, r_in = rank_for_energy(s_out, energy), rank_for_energy(s_in, energy)
            else:  # shrink both channel ranks by one factor until the chain fits the MACs budget
                r_out, r_in = len(s_out), len(s_in)
                for step in range(100, 0, -1):
                    r_out, r_in = (
                        max(1, round(len(s_out) * step / 100)),
                        max(1, round(len(s_in) * step / 100)),
                    )
                    # per output position; the first 1x1 runs at the input resolution (stride sh x sw)
                    if i * r_in * sh * sw + r_in * r_out * kh * kw + r_out * o <= ratio * o * i * kh * kw:
                        break
            r_out, r_in = max(r_out, config.min_rank), max(r_in, config.min_rank)
            new, ranks = tucker2_conv(module, r_out, r_in), (r_out, r_in)
            kept, kind = (retained(s_out, r_out), retained(s_in, r_in)), "tucker2"
    after = sum(p.numel() for p in new.parameters())
    if after >= before:
        return None  # the chain would be bigger than the layer: nothing to gain
    return new.to(module.weight.dtype), Factorised(name, kind, ranks, kept, before, after)


def factorize_(model: nn.Module, config: LowRankConfig | None = None) -> list[Factorised]:
    """Replace every selected Linear / ungrouped Conv2d of ``model`` in place; returns what changed."""
    materialised(model, "factorise")  # an SVD needs the weights
    config = config or LowRankConfig()
    keep = config.filter_fn or (lambda m, n: is_linear(m) or isinstance(m, nn.Conv2d))
    ensure_base(model)  # before any layer changes: what the unedited model was
    names: dict[int, list[str]] = {}
    for n, m in model.named_modules(remove_duplicate=False):
        names.setdefault(id(m), []).append(n)
    # torch's attention and transformer layers read their Linears' .weight in fused paths
    fused = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    attention = {id(c) for m in model.modules() if isinstance(m, fused) for c in m.modules() if c is not m}
    targets = [
        (n, m) for n, m in model.named_modules()
        if n and (is_linear(m) or isinstance(m, nn.Conv2d)) and keep(m, n)
        # those read .weight themselves (a chain has none), and a layer registered
        # under two names is shared: replacing it under one would untie them
        and id(m) not in attention and len(names[id(m)]) == 1
    ]  # fmt: skip
    done = []
    for name, module in targets:
        result = _factorise(module, name, config)
        if result is None:
            continue
        new, record = result
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attr, new)
        done.append(record)
    if done:
        layers = [{"name": r.name, "kind": r.kind, "ranks": list(r.ranks)} for r in done]
        append_step(model, {"kind": "factorise", "layers": layers})
    return done


def _rank_limits(module: nn.Module, kind: str) -> tuple[int, ...] | None:
    """The largest ranks a ``kind`` factorisation of ``module`` can have (None: wrong layer type)."""
    if kind == "svd" and is_linear(module):
        return (min(linear_features(module)),)
    if not isinstance(module, nn.Conv2d) or module.groups != 1 or kind not in ("spatial", "tucker2"):
        return None
    o, i, kh, kw = module.weight.shape
    return (min(i * kh, o * kw),) if kind == "spatial" else (o, i)


def refactorise_(model: nn.Module, layers: list[dict[str, Any]]) -> None:
    """Give ``model`` the layer chains a recorded :func:`factorize_` made (names, kinds, ranks), so a
    saved factorised model can be rebuilt and its weights loaded; the chains' values are placeholders
    until then."""
    build = {"svd": svd_linear, "spatial": spatial_svd_conv, "tucker2": tucker2_conv}
    for layer in layers:
        name, kind, ranks = layer.get("name"), layer.get("kind"), layer.get("ranks")
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(
                f"the saved factorisation names layer {name!r}, which the model lacks"
            ) from None
        if kind not in build or not isinstance(ranks, list) or not all(isinstance(r, int) for r in ranks):
            raise CheckpointError(f"unreadable factorisation record for {name!r}: {layer!r}")
        limits = _rank_limits(module, kind)
        if limits is None or len(ranks) != len(limits) or not all(1 <= r <= m for r, m in zip(ranks, limits)):
            raise CheckpointError(
                f"the saved factorisation of {name!r} ({kind}, ranks {ranks}) does not fit the layer "
                f"{type(module).__name__}: ranks must be within {limits}"
            )
        with torch.no_grad():
            new = build[kind](module, *ranks).to(module.weight.dtype)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attr, new)
    append_step(model, {"kind": "factorise", "layers": copy.deepcopy(layers)})


def lowrank_model(
    model: nn.Module, config: LowRankConfig, train_loader: Any, test_loader: Any, **train_kwargs: Any
) -> nn.Module:
    """Factorise ``model`` in place, fine-tune it with ``config.train`` and return it.

    The records of :func:`factorize_` are left on ``model.netsculpt_lowrank`` for reports.
    """
    records = factorize_(model, config)
    if not records:
        raise ConfigError("no layer was factorised: every candidate would grow; lower energy or macs_ratio")
    result = train(model, train_loader, test_loader, config.train, **train_kwargs)
    model.netsculpt_lowrank = records  # type: ignore[assignment]
    model.netsculpt_lowrank_result = result  # type: ignore[assignment]
    return model
