"""Channel groups found on hand-written architectures: structure, pinning and reasons."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netsculpt.errors import PruningError, TraceError
from netsculpt.graph import register_module_rule, trace
from netsculpt.graph.rules.common import channel_atoms
from netsculpt.surgery.verify import pruning_error, random_plan
from tests.graph.archs import (
    ChannelsLast,
    Concat,
    GroupedSE,
    PadShortcut,
    Residual,
    ShuffleBlock,
    cbr,
    randomize_,
)


def members(graph, gid: str) -> set[tuple[str, int]]:
    return {(m.name, m.dim) for m in graph.group(gid).members}


def test_residual_blocks_share_one_group_and_flatten_expands() -> None:
    g = trace(Residual(), torch.randn(1, 3, 8, 8))
    stage = members(g, "stem.0")
    # stem, both blocks' last convs, their BNs and the Linear after flatten are one group
    assert {("stem.0.weight", 0), ("b1.1.weight", 0), ("b2.1.weight", 0), ("fc.weight", 1)} <= stage
    fc_in = next(m for m in g.group("stem.0").members if m.name == "fc.weight")
    # each of the 8 channels owns the 4 pooled positions (2x2) of the flattened Linear input
    assert sorted(fc_in.positions[fc_in.channels == 3].tolist()) == [12, 13, 14, 15]
    assert g.group("b1.0.0").n_prunable == 6


def test_network_output_is_pinned_with_reason() -> None:
    g = trace(Residual(), torch.randn(1, 3, 8, 8))
    fc = g.group("fc")
    assert fc.n_prunable == 0 and "network output" in fc.reasons[0]


def test_concat_consumers_split_by_producer() -> None:
    g = trace(Concat(), torch.randn(1, 3, 8, 8))
    d_in = [m for m in g.groups if any(x.name == "d.0.weight" and x.dim == 1 for x in m.members)]
    # d reads channels of a (6), b (4) and c (7): three groups, positions at the right offsets
    assert sorted(grp.size for grp in d_in) == [4, 6, 7]
    c_group = g.group("c.0")
    pos = next(m for m in c_group.members if m.name == "d.0.weight").positions
    assert sorted(pos.tolist()) == list(range(10, 17))


def test_chunk_and_shuffle_tie_halves() -> None:
    g = trace(ShuffleBlock(), torch.randn(1, 3, 8, 8))
    stem = g.group("stem.0")
    # chunk(2) + shuffle: channel j of the identity half and of the branch output prune together
    assert stem.size == 4 and stem.n_prunable == 4
    assert ("branch.3.0.weight", 0) in members(g, "stem.0")


def test_grouped_conv_keeps_group_count_and_depthwise_follows() -> None:
    g = trace(GroupedSE(), torch.randn(1, 3, 8, 8))
    grouped = g.group("grouped")
    assert grouped.size == 3  # 12 outputs / 4 groups: position j of every group is one channel
    # the depthwise conv follows its input channels, and the SE gate and projection follow it
    tied = members(g, "grouped")
    assert {
        ("dw.weight", 0),
        ("se2.weight", 0),
        ("se1.weight", 1),
        ("proj.weight", 1),
        ("act.weight", 0),
    } <= tied
    dw = next(m for m in grouped.members if m.name == "dw.weight")
    assert dw.positions.size == 24 and (dw.channels == 0).sum() == 8  # 4 groups x multiplier 2


def test_layernorm_channels_need_allow_inexact() -> None:
    x = torch.randn(1, 3, 8, 8)
    strict = trace(ChannelsLast(), x)
    stem = strict.group("stem")
    assert stem.n_prunable == 0 and "normalises" in " ".join(stem.reasons)
    assert strict.group("fc1").n_prunable == 32  # the MLP hidden dim is exact
    loose = trace(ChannelsLast(), x, allow_inexact=True)
    assert loose.group("stem").n_prunable == 8
    assert ("gamma", 0) in members(loose, "stem")  # the bare layer-scale Parameter follows its channels


def test_pad_shortcut_pins_only_padded_channels() -> None:
    g = trace(PadShortcut(), torch.randn(1, 3, 8, 8))
    branch = g.group("branch.1")
    # branch channels 0,1 and 6,7 face the zero padding: pinned; 2..5 pair with the stem's channels
    assert branch.prunable.tolist().count(True) == 0
    stem = members(g, "stem.0")
    assert ("branch.1.weight", 0) in stem


class HardSlice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = cbr(3, 8)
        self.b = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)[:, :4])  # a fixed slice: pruning inside 0..7 would shift it


class RollChannels(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = cbr(3, 8)
        self.b = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.roll(self.a(x), 1, dims=1))


class NoRule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = cbr(3, 8)
        self.b = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.cummax(self.a(x), dim=2).values)


@pytest.mark.parametrize(
    ("cls", "words"),
    [(HardSlice, "fixed positions"), (RollChannels, "fixed amount"), (NoRule, "no channel rule")],
)
def test_unsafe_ops_pin_channels(cls: type, words: str) -> None:
    g = trace(cls(), torch.randn(1, 3, 8, 8))
    group = g.group("a.0")
    assert group.n_prunable == 0
    assert any(words in r for r in group.reasons), group.reasons


class ScalarAffine(nn.Module):
    """StarReLU / HGNetV2's learnable affine: one scalar scale and one scalar bias for all channels."""

    def __init__(self, with_bias: bool) -> None:
        super().__init__()
        self.a = cbr(3, 8)
        self.b = nn.Conv2d(8, 2, 1)
        self.scale = nn.Parameter(torch.full((1,), 0.8))
        self.bias = nn.Parameter(torch.full((1,), 0.3)) if with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.scale * self.a(x) ** 2
        return self.b(y + self.bias if self.bias is not None else y)


class Threshold(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.a, self.b, self.value = cbr(3, 8), nn.Conv2d(8, 2, 1), value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.threshold(self.a(x), 0.1, self.value))


@pytest.mark.parametrize(
    ("model", "exact"),
    [
        (ScalarAffine(True), False),
        (ScalarAffine(False), True),
        (Threshold(1.0), False),
        (Threshold(0.0), True),
    ],
)
def test_constant_offsets_make_masked_channels_nonzero(model: nn.Module, exact: bool) -> None:
    """A masked channel plus a shared scalar bias (or threshold's fill value) is that constant, not 0:
    removing it would change the next layer's output, so exact mode pins it."""
    x = torch.randn(1, 3, 8, 8)
    randomize_(model)
    group = trace(model, x).group("a.0")
    assert group.n_prunable == (8 if exact else 0), group.reasons
    graph = trace(model, x, allow_inexact=not exact)
    error = pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x)
    if exact:
        assert error < 1e-5
    else:  # the pin was needed: forcing the channels out really changes the output
        assert any("not zero when masked" in r for r in group.reasons), group.reasons
        assert error > 1e-3


class StdConv(nn.Conv2d):
    """Weight standardisation as timm's NFNets and BiT do it: the conv reads a tensor computed in forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True, eps=1e-6)
        return F.conv2d(x, w.reshape_as(self.weight), self.bias, self.stride, self.padding)


class ComputedWeights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = StdConv(3, 8, 3, padding=1)
        self.b = nn.utils.parametrizations.weight_norm(nn.Conv2d(8, 8, 1))
        self.c = nn.Conv2d(8, 6, 1)
        self.d = nn.Conv2d(6, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.d(F.relu(self.c(F.relu(self.b(F.relu(self.a(x)))))))


def test_computed_conv_weights_are_pinned_not_guessed() -> None:
    """Standardised or parametrised weights have no parameter slice to remove: the convs' channels are
    pinned with a reason, and the ordinary conv after them still prunes exactly."""
    model, x = ComputedWeights(), torch.randn(1, 3, 8, 8)
    graph = trace(model, x, allow_inexact=True)
    pinned = [g for g in graph.groups if any("computed in forward" in r for r in g.reasons)]
    assert pinned and all(g.n_prunable == 0 for g in pinned)
    assert [g.id for g in graph.prunable_groups] == ["c"]
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) < 1e-5


class MaskFromMLP(nn.Module):
    """Like timm's MaxxViT-rmlp: an MLP's outputs are the heads of a bias passed as ``attn_mask``."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.proj = nn.Linear(8, 24), nn.Linear(8, 8)
        self.bias_mlp = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        self.register_buffer("coords", torch.randn(6, 6, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, 2, 4).permute(2, 0, 3, 1, 4)
        bias = self.bias_mlp(self.coords).view(-1, 2).view(6, 6, 2).permute(2, 0, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, 8))


def test_attention_mask_channels_are_pinned() -> None:
    graph = trace(MaskFromMLP(), torch.randn(1, 6, 8), allow_inexact=True)
    heads = graph.group("bias_mlp.2")
    assert heads.n_prunable == 0 and any("attention logits" in r for r in heads.reasons), heads.reasons
    assert graph.group("bias_mlp.0").n_prunable == 16  # the MLP's hidden layer is still free


class ViewedScale(nn.Module):
    """A per-channel scale stored flat and viewed for NCHW, as timm's ConvNeXt and LayerScale2d do."""

    def __init__(self, view) -> None:
        super().__init__()
        self.a, self.b, self.view = cbr(3, 8), nn.Conv2d(8, 2, 1), view
        self.gamma = nn.Parameter(torch.rand(8) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.view(self.gamma)
        return self.b(self.a(x) * g + g)


@pytest.mark.parametrize(
    ("view", "prunable"),
    [
        (lambda g: g.view(1, -1, 1, 1), True),
        (lambda g: g.reshape(-1, 1, 1), True),
        (lambda g: g.unsqueeze(-1).unsqueeze(-1), True),
        (lambda g: g.view(1, 8, 1, 1), False),  # the constant 8 would not follow pruning
    ],
)
def test_parameter_seen_through_a_view_follows_its_channels(view, prunable: bool) -> None:
    model, x = randomize_(ViewedScale(view)), torch.randn(1, 3, 8, 8)
    graph = trace(model, x)
    assert graph.group("a.0").n_prunable == (8 if prunable else 0)
    if prunable:
        assert ("gamma", 0) in members(graph, "a.0")
        assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) < 1e-5


def test_ignored_modules_keep_channels() -> None:
    g = trace(Residual(), torch.randn(1, 3, 8, 8), ignored=["b1.0"])
    assert g.group("b1.0.0").n_prunable == 0
    assert g.group("b2.0.0").n_prunable == 6
    with pytest.raises(PruningError, match="Did you mean"):
        trace(Residual(), torch.randn(1, 3, 8, 8), ignored=["b1.O"])


class Gate(nn.Module):
    """A custom layer traced as one step through a user rule."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erfinv(torch.tanh(x) * 0.5) * self.scale.view(1, -1, 1, 1)


class WithGate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = cbr(3, 8)
        self.gate = Gate(8)
        self.b = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.gate(self.a(x)))


def test_user_module_rule_unpins_custom_layer() -> None:
    x = torch.randn(1, 3, 8, 8)
    assert trace(WithGate(), x).group("a.0").n_prunable == 0  # erfinv has no rule: pinned

    @register_module_rule(Gate)
    def gate_rule(ctx, call) -> None:
        (inp,), (out,) = call.inputs, call.outputs
        channels = channel_atoms(ctx, inp, 1, call.where)
        ctx.couple(channels, ctx.member(call.params["scale"], 0, "out"), call.where)
        out.labels, out.zero = inp.labels, inp.zero  # channels pass straight through

    try:
        model = randomize_(WithGate())
        g = trace(model, x)
        assert g.group("a.0").n_prunable == 8
        assert ("gate.scale", 0) in members(g, "a.0")
        assert pruning_error(model, g, random_plan(g, 0.5), x) < 1e-4
    finally:
        from netsculpt.graph.registry import MODULE_RULES

        MODULE_RULES.pop(Gate)


def test_wrong_input_shape_is_explained() -> None:
    with pytest.raises(TraceError, match=r"inside `stem.0`.*expects input of shape \(N, 3, \.\.\.\)"):
        trace(Residual(), torch.randn(1, 5, 8, 8))


def test_printing_lists_groups() -> None:
    text = str(trace(Residual(), torch.randn(1, 3, 8, 8)))
    assert "stem.0: 8 channels, 8/8 prunable" in text
    assert "fc: 5 channels, not prunable" in text


def test_trace_restores_training_mode() -> None:
    model = Residual().train()
    trace(model, torch.randn(1, 3, 8, 8))
    assert model.training


def test_functional_conv_with_parameter() -> None:
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w1 = nn.Parameter(torch.randn(6, 3, 3, 3))
            self.w2 = nn.Parameter(torch.randn(2, 6, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(F.relu(F.conv2d(x, self.w1, padding=1)), self.w2)

    g = trace(Functional(), torch.randn(1, 3, 8, 8))
    assert members(g, "w1") == {("w1", 0), ("w2", 1)}
    assert g.group("w1").n_prunable == 6
