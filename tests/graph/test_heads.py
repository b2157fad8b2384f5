"""Attention heads prune whole and exactly: q, k, v and the output projection lose the same heads."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netsculpt as ns
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.measure import count_macs
from netsculpt.surgery.plan import PrunePlan
from netsculpt.surgery.verify import pruning_error, random_plan
from tests.coverage._check import make_nontrivial_

TOLERANCE = 1e-5  # float32 sums in another order: the coverage tests measure 1e-8 to 1e-6


class MiniAttention(nn.Module):
    """Hugging Face layout: ``view(B, N, -1, head_dim)``, eager or fused attention, ``reshape(B, N, -1)``."""

    def __init__(self, dim: int = 32, head_dim: int = 8, fused: bool = True) -> None:
        super().__init__()
        self.head_dim, self.fused = head_dim, fused
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.embed, self.out = nn.Linear(6, dim), nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        b, n = x.shape[:2]
        q, k, v = (p(x).view(b, n, -1, self.head_dim).transpose(1, 2) for p in (self.q, self.k, self.v))
        if self.fused:
            a = F.scaled_dot_product_attention(q, k, v)
        else:
            a = (q @ k.transpose(-2, -1) * self.head_dim**-0.5).softmax(-1) @ v
        return self.out(self.o(a.transpose(1, 2).reshape(b, n, -1)) + x)


def _head_group(graph: ChannelGraph, layer: str):
    return next(g for g in graph.groups if any(m.module == layer and m.dim == 0 for m in g.members))


def _exact_at_half(model: nn.Module, x: torch.Tensor) -> tuple[ChannelGraph, PrunePlan, float]:
    graph = ns.trace(model, x)
    plan = random_plan(graph, 0.5, seed=0)
    err = pruning_error(model, graph, plan, (x,))
    assert err <= TOLERANCE, f"relative error {err:.2e}"
    return graph, plan, err


def _macs(model: nn.Module, graph: ChannelGraph, plan: PrunePlan, x: torch.Tensor) -> float:
    small = ns.apply_plan(copy.deepcopy(model), plan, x, graph=graph)
    return count_macs(small, x)[0] / count_macs(model, x)[0]


def _without_heads(plan: PrunePlan, head_groups: list[str]) -> PrunePlan:
    keep = {g: k for g, k in plan.keep.items() if g not in head_groups}
    return PrunePlan(keep, plan.sizes, plan.meta)


@pytest.mark.parametrize("fused", [True, False])
def test_a_head_is_one_channel_of_q_k_v_and_the_output_columns(fused: bool) -> None:
    torch.manual_seed(0)
    model, x = MiniAttention(fused=fused).eval(), torch.randn(2, 5, 6)
    graph, plan, _ = _exact_at_half(model, x)
    heads = _head_group(graph, "q")
    assert heads.size == 4 and heads.n_prunable == 4, heads.reasons
    tied = {(m.module, m.dim) for m in heads.members}
    assert {("q", 0), ("k", 0), ("v", 0), ("o", 1)} <= tied
    q_rows = next(m for m in heads.members if m.name == "q.weight")
    assert [len(s) for s in q_rows.slices(4)] == [8] * 4  # a head owns head_dim contiguous rows
    small = ns.apply_plan(copy.deepcopy(model), plan, x, graph=graph)
    assert small.q.out_features == small.k.out_features == small.o.in_features == 16  # 2 heads of 8


def test_ns_prune_scores_heads_with_the_criteria() -> None:
    torch.manual_seed(0)
    model, x = MiniAttention().eval(), torch.randn(2, 5, 6)
    with torch.no_grad():  # head 2 of every projection much the largest: l1 keeps it
        for p in (model.q, model.k, model.v):
            p.weight[16:24] *= 100
    small = ns.prune(model, x, ratio=0.5, criterion="l1")
    assert small.q.out_features == 16
    norms = small.q.weight.norm(dim=1)
    assert int((norms > 10 * norms.min()).sum()) == 8  # the large head is one of the two kept


class WrittenHeads(nn.Module):
    """timm's layout, ``reshape(B, N, 3, heads, head_dim)``, the head count read from ``self.num_heads``
    (``attribute=True``) or written as a number."""

    def __init__(self, attribute: bool = True, head_size: int | None = None) -> None:
        super().__init__()
        self.qkv, self.o = nn.Linear(32, 96), nn.Linear(32, 32)
        self.num_heads, self.head_dim, self.attn_dim, self.attribute = 4, 8, 32, attribute
        self.head_size = head_size or self.head_dim  # -1: timm Swin's ``reshape(.., self.num_heads, -1)``

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, c = (self.num_heads, self.attn_dim) if self.attribute else (4, 32)
        q, k, v = self.qkv(x).reshape(2, 5, 3, h, self.head_size).permute(2, 0, 3, 1, 4).unbind(0)
        return self.o(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 5, c))


def test_a_written_head_count_stays_pinned_even_when_an_attribute_equals_it() -> None:
    """``num_heads == 4`` here, but the code writes 4: rewriting the attribute would not change the view."""
    graph = ns.trace(WrittenHeads(attribute=False).eval(), torch.randn(2, 5, 32))
    group = graph.group("qkv")
    assert group.n_prunable == 0, group.reasons
    assert any("head count (4) is written as a number" in r for _, _, r in graph.builder.keep_dims)


@pytest.mark.parametrize("head_size", [None, -1])
def test_a_head_count_attribute_follows_the_pruning(head_size: int | None) -> None:
    torch.manual_seed(0)
    model, x = WrittenHeads(head_size=head_size).eval(), torch.randn(2, 5, 32)
    graph, plan, _ = _exact_at_half(model, x)
    assert graph.group("qkv").size == 4
    small = ns.apply_plan(copy.deepcopy(model), plan, x, graph=graph)
    assert (small.num_heads, small.attn_dim) == (2, 16)


class DerivedHeadSize(nn.Module):
    """BLIP's attention: ``reshape(B, N, 3, self.num_heads, embed_dim // self.num_heads)`` with ``embed_dim``
    read from the *input* (``x.size()``), so the head size is computed from the head count; the heads merge
    back with ``self.embed_dim``."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.num_heads, self.embed_dim = 4, dim
        self.qkv, self.projection = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, embed_dim = x.size()
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, embed_dim // self.num_heads).permute(2, 0, 3, 1, 4)
        scores = (qkv[0] @ qkv[1].transpose(-1, -2) * 0.25).softmax(-1)
        context = (scores @ qkv[2]).permute(0, 2, 1, 3)
        context = context.reshape((*context.size()[:-2], self.embed_dim))
        return self.out(self.projection(context))


def test_a_head_size_computed_from_the_head_count_keeps_the_heads() -> None:
    """Rewriting ``num_heads`` would change ``embed_dim // num_heads`` too: the pruned BLIP no longer ran
    (``shape '[2, 17, 3, 1, 32]' is invalid``), found by benchmarks/hf_sweep.py after heads landed."""
    torch.manual_seed(0)
    model, x = DerivedHeadSize().eval(), torch.randn(2, 5, 32)
    graph = ns.trace(model, x)
    plan = random_plan(graph, 0.5, seed=0)
    err = pruning_error(model, graph, plan, (x,))
    assert err <= TOLERANCE, f"relative error {err:.2e}"
    small = ns.apply_plan(copy.deepcopy(model), plan, x, graph=graph)
    assert small.num_heads == 4


def test_timm_attention_prunes_heads_and_rewrites_num_heads() -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, mlp_ratio=2, num_classes=10
    )
    model, x = make_nontrivial_(model), torch.randn(2, 3, 32, 32)
    graph, plan, _ = _exact_at_half(model, x)
    heads = [g.id for g in graph.groups if g.id.endswith("attn.qkv")]
    assert heads and all(graph.group(g).size == 4 and graph.group(g).n_prunable == 4 for g in heads)
    small = ns.apply_plan(copy.deepcopy(model), plan, x, graph=graph)
    attn = small.blocks[0].attn
    assert (attn.num_heads, attn.attn_dim, attn.head_dim) == (2, 32, 16)
    assert attn.qkv.out_features == 96 and attn.proj.in_features == 32
    assert _macs(model, graph, plan, x) < _macs(model, graph, _without_heads(plan, heads), x)


def _hf_bert(attn: str) -> tuple[nn.Module, torch.Tensor]:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64
    )
    config._attn_implementation = attn
    model = transformers.BertForSequenceClassification(config)
    return make_nontrivial_(model), torch.randint(0, 100, (2, 8))


def _hf_vit() -> tuple[nn.Module, torch.Tensor]:
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=16,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=3,
    )
    return make_nontrivial_(transformers.ViTForImageClassification(config)), torch.randn(2, 3, 16, 16)


@pytest.mark.parametrize("case", ["bert-sdpa", "bert-eager", "vit"])
def test_hugging_face_attention_prunes_whole_heads(case: str) -> None:
    torch.manual_seed(0)
    model, x = _hf_vit() if case == "vit" else _hf_bert(case.split("-")[1])
    graph, plan, _ = _exact_at_half(model, x)
    heads = [g.id for g in graph.groups if g.size == 4 and g.n_prunable == 4]
    assert len(heads) == 1, [str(g) for g in graph.groups]
    weights = [m for m in graph.group(heads[0]).members if m.name.endswith(".weight")]
    assert sorted(m.dim for m in weights) == [0, 0, 0, 1]  # q, k, v rows; the output projection's columns
    small = ns.apply_plan(copy.deepcopy(model), plan, x, graph=graph)
    kept = {m.module: small.get_submodule(m.module).weight.shape[m.dim] for m in weights}
    assert set(kept.values()) == {16}, kept  # 2 heads of 8 left everywhere
    assert _macs(model, graph, plan, x) < _macs(model, graph, _without_heads(plan, heads), x)


class MHAMixer(nn.Module):
    """``nn.MultiheadAttention`` on a conv's tokens: its input width is free, so whole heads can go."""

    def __init__(self, need_weights: bool, per_head_mask: bool = False) -> None:
        super().__init__()
        self.patch, self.need_weights = nn.Conv2d(3, 32, 4, stride=4), need_weights
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.head = nn.Linear(32, 3)
        self.mask = torch.zeros(2 * 4, 16, 16) if per_head_mask else None  # (batch * heads, L, S)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        out = self.attn(x, x, x, need_weights=self.need_weights, attn_mask=self.mask)[0]
        return self.head(out.mean(1))


def test_multihead_attention_loses_whole_heads_and_num_heads_follows() -> None:
    torch.manual_seed(0)
    model, x = MHAMixer(need_weights=False).eval(), torch.randn(2, 3, 16, 16)
    graph, plan, _ = _exact_at_half(model, x)
    heads = graph.group("patch")
    assert heads.size == 4 and heads.n_prunable == 4, heads.reasons  # the conv's outputs, in heads of 8
    small = ns.apply_plan(copy.deepcopy(model), plan, x, graph=graph)
    assert (small.attn.num_heads, small.attn.head_dim, small.attn.embed_dim) == (2, 8, 16)
    # returned weights average over every head, the masked ones too: only inexact then, as before
    assert ns.trace(MHAMixer(need_weights=True).eval(), x).group("patch").n_prunable == 0
    assert ns.trace(MHAMixer(False, per_head_mask=True).eval(), x).group("patch").n_prunable == 0
