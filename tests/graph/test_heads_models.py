"""Whole heads in models whose attention carries more than q, k and v: Swin's relative-position bias
table, GPT-2's ``split(self.split_size)`` of one fused projection, T5's shared position biases."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netsculpt as ns
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.measure import count_macs
from netsculpt.surgery.verify import pruning_error, random_plan
from tests.coverage._check import make_nontrivial_

TOLERANCE = 1e-5  # float32 sums in another order: measured 0 to 4e-7


def _exact_at_half(model: nn.Module, x: object) -> tuple[ChannelGraph, nn.Module]:
    graph = ns.trace(model, x)
    plan = random_plan(graph, 0.5, seed=0)
    err = pruning_error(model, graph, plan, x if isinstance(x, tuple) else (x,))
    assert err <= TOLERANCE, f"relative error {err:.2e}"
    return graph, ns.apply_plan(copy.deepcopy(model), plan, x, graph=graph)


def _macs(model: nn.Module, x: object) -> int:
    return count_macs(model, x)[0]


def _groups_holding(graph: ChannelGraph, name: str) -> list:
    return [g for g in graph.groups if any(m.name == name for m in g.members)]


class BiasTableAttention(nn.Module):
    """timm's Swin layout: a ``(positions, heads)`` table gathered by an index buffer, viewed to
    ``(N, N, -1)``, permuted heads-first; added to the logits, or passed to SDPA with a shift mask
    expanded over ``self.num_heads`` (``shifted``)."""

    def __init__(self, fused: bool, shifted: bool) -> None:
        super().__init__()
        self.num_heads, self.n, self.fused, self.shifted = 4, 16, fused, shifted
        self.qkv, self.proj, self.head = nn.Linear(8, 48), nn.Linear(16, 8), nn.Linear(8, 3)
        self.embed = nn.Conv2d(3, 8, 2, stride=2)
        self.table = nn.Parameter(torch.randn(7, 4))
        self.register_buffer("index", torch.randint(0, 7, (256,)))
        self.register_buffer("mask", torch.where(torch.rand(1, 16, 16) > 0.5, 0.0, -100.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)  # the conv's width is free: no LayerNorm here
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.table[self.index].view(self.n, self.n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        if self.fused:
            if self.shifted:
                mask = self.mask.view(1, 1, 1, n, n).expand(b, -1, self.num_heads, -1, -1)
                bias = bias + mask.reshape(-1, self.num_heads, n, n)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            out = ((q @ k.transpose(-2, -1)) * 0.5 + bias).softmax(-1) @ v
        return self.head(self.proj(out.transpose(1, 2).reshape(b, n, -1)).mean(1))


@pytest.mark.parametrize(("fused", "shifted"), [(False, False), (True, False), (True, True)])
def test_a_gathered_bias_table_loses_its_heads_columns(fused: bool, shifted: bool) -> None:
    torch.manual_seed(0)
    model, x = BiasTableAttention(fused, shifted).eval(), torch.randn(2, 3, 8, 8)
    graph, small = _exact_at_half(model, x)
    (heads,) = _groups_holding(graph, "table")
    assert heads.size == 4 and heads.n_prunable == 4, heads.reasons
    assert {(m.name, m.dim) for m in heads.members} >= {("qkv.weight", 0), ("table", 1), ("proj.weight", 1)}
    assert small.num_heads == 2 and small.table.shape == (7, 2) and small.qkv.out_features == 24


def test_timm_swin_prunes_whole_heads_with_its_bias_tables() -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.models.swin_transformer.SwinTransformer(
        img_size=32, patch_size=4, window_size=4, embed_dim=32, depths=(2, 2), num_heads=(2, 4), num_classes=5
    )  # block 1 of stage 0 is a shifted window: its shift mask is added to the bias before SDPA
    model, x = make_nontrivial_(model.eval()), torch.randn(2, 3, 32, 32)
    graph, small = _exact_at_half(model, x)
    heads = [g for g in graph.groups if g.id.endswith("attn.qkv")]
    assert [g.n_prunable for g in heads] == [2, 2, 4, 4], [g.reasons for g in heads]
    attn = small.layers[1].blocks[1].attn
    assert attn.num_heads == 2 and attn.relative_position_bias_table.shape[1] == 2
    assert _macs(small, x) < 0.6 * _macs(model, x)  # 0.532 measured; 0.706 before, when heads were pinned


def test_hugging_face_swin_prunes_whole_heads() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.SwinConfig(
        image_size=32, patch_size=4, embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=4
    )
    model = make_nontrivial_(transformers.SwinForImageClassification(config).eval())
    x = torch.randn(2, 3, 32, 32)
    graph, small = _exact_at_half(model, x)
    heads = [g for g in graph.groups if g.id.endswith("q_proj")]
    assert [g.n_prunable for g in heads] == [2, 2, 4, 4], [g.reasons for g in heads]
    table = "swin.encoder.layers.0.blocks.1.attention.relative_position_bias.relative_position_bias_table"
    assert _groups_holding(graph, table) == [heads[1]]
    assert _macs(small, x) < 0.6 * _macs(model, x)  # 0.532 measured; 0.706 before


def test_torchvision_swin_keeps_heads_tied_to_its_model_width() -> None:
    """``reshape(B, N, 3, num_heads, C // num_heads)`` with ``C`` the block's input width: fewer heads
    would widen the others, so head-dim positions go instead, with the model width, which LayerNorm pins;
    ``allow_inexact`` opens them (it pinned them hard until 2026-12-08)."""
    from torchvision.models.swin_transformer import SwinTransformer

    model, x = SwinTransformer([4, 4], 32, [2], [2], [4, 4], num_classes=5).eval(), torch.randn(1, 3, 16, 16)
    heads = _groups_holding(ns.trace(model, x), "features.1.0.attn.qkv.weight")[0]
    assert heads.n_prunable == 0 and any("normalises over these channels" in r for r in heads.reasons)
    loose = _groups_holding(ns.trace(model, x, allow_inexact=True), "features.1.0.attn.qkv.weight")[0]
    assert loose.n_prunable == loose.size == 16  # the head size's positions, each with 2 of the 32 widths


class CountedHeadSize(nn.Module):
    """BLIP's layout: ``reshape(B, N, 3, self.num_heads, C // self.num_heads)`` with ``C`` read from the
    input, merged back with ``self.embed_dim``."""

    def __init__(self) -> None:
        super().__init__()
        self.num_heads, self.embed_dim = 4, 16
        self.embed, self.qkv, self.proj = nn.Linear(3, 16), nn.Linear(16, 48), nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        return self.proj(out.reshape(b, n, self.embed_dim))


def test_a_head_size_counted_from_the_input_width_keeps_the_heads() -> None:
    """Fewer heads would widen each head (``C`` stays): they are not whole heads. Until 2026-12-08 they
    were, and the pruned model failed to run (BLIP in benchmarks/hf_sweep.py)."""
    torch.manual_seed(0)
    model, x = CountedHeadSize().eval(), torch.randn(2, 5, 3)
    graph, small = _exact_at_half(model, x)
    assert graph.group("qkv").n_prunable == 0 and small.num_heads == 4


def _gpt2(use_cache: bool) -> tuple[nn.Module, torch.Tensor]:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=100, n_positions=16, n_embd=32, n_layer=2, n_head=4, use_cache=use_cache
    )
    return make_nontrivial_(transformers.GPT2LMHeadModel(config).eval()), torch.randint(0, 100, (2, 8))


def test_gpt2_heads_go_from_q_k_and_v_of_its_fused_projection() -> None:
    torch.manual_seed(0)
    model, ids = _gpt2(use_cache=False)
    graph, small = _exact_at_half(model, ids)
    heads = graph.group("transformer.h.0.attn.c_attn")
    assert heads.size == 4 and heads.n_prunable == 4, heads.reasons
    cols = next(m for m in heads.members if m.name == "transformer.h.0.attn.c_attn.weight")
    assert [sorted({int(p) // 32 for p in s}) for s in cols.slices(4)] == [[0, 1, 2]] * 4  # in q, k and v
    attn = small.transformer.h[0].attn
    assert attn.split_size == 16 and attn.c_attn.weight.shape == (32, 48)  # Conv1D: (in, out)
    assert attn.c_proj.weight.shape == (16, 32)
    assert _macs(small, ids) < 0.6 * _macs(model, ids)  # 0.556 measured; 0.716 before
    # the returned KV cache is a network output: its heads stay
    assert ns.trace(*_gpt2(use_cache=True)).group("transformer.h.0.attn.c_attn").n_prunable == 0


class FixedSplit(nn.Module):
    """Pieces of a size written as a number, or unequal ones, keep the dim whole (as before)."""

    def __init__(self, sizes: int | list[int] | str) -> None:
        super().__init__()
        self.proj, self.out, self.sizes, self.split_size = nn.Linear(4, 12), nn.Linear(12, 2), sizes, 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = self.proj(x).split(self.split_size if self.sizes == "attribute" else self.sizes, dim=-1)
        return self.out(torch.cat([p.relu() for p in pieces], -1))


@pytest.mark.parametrize("sizes", [4, [4, 4, 4], [4, 6, 2], "attribute"])
def test_only_equal_pieces_sized_by_a_width_attribute_shrink(sizes: object) -> None:
    torch.manual_seed(0)
    model, x = FixedSplit(sizes).eval(), torch.randn(2, 4)
    graph = ns.trace(model, x)
    assert (graph.group("proj").n_prunable == 4) == (sizes == "attribute"), graph.group("proj").reasons
    if sizes == "attribute":  # channel j is position j of every piece; split_size follows
        _, small = _exact_at_half(model, x)
        assert small.split_size == 2 and small.proj.out_features == 6


def _t5() -> tuple[nn.Module, tuple]:
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(
        vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, use_cache=False
    )
    ids = torch.randint(0, 100, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 6:] = 0
    return make_nontrivial_(transformers.T5ForConditionalGeneration(config).eval()), (ids, mask, ids)


def test_t5_prunes_self_and_cross_attention_heads_with_their_shared_biases() -> None:
    torch.manual_seed(0)
    model, x = _t5()
    graph, small = _exact_at_half(model, x)
    heads = [g for g in graph.groups if g.id.endswith(".q")]
    # layer 0's bias (a table, or zeros for cross-attention) is reused by layer 1: one group per stack
    assert [(g.id.split(".")[0], g.size, g.n_prunable) for g in heads] == [
        ("encoder", 4, 4),
        ("decoder", 4, 4),
        ("decoder", 4, 4),
    ], [g.reasons for g in heads]
    table = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    assert [g.id for g in _groups_holding(graph, table)] == [heads[0].id]
    cross = small.decoder.block[0].layer[1].EncDecAttention
    assert cross.n_heads == 2 and cross.q.out_features == 16  # n_heads sizes its zero position bias
    assert _macs(small, x) < 0.6 * _macs(model, x)  # 0.534 measured; 0.827 before
