"""Mixture-of-experts layers as Hugging Face runs them: ``grouped_mm`` over 3-D expert weights (Mixtral,
Qwen2-MoE, OLMoE). Until the sweep (benchmarks/hf_sweep.py) it had no rule and pinned every expert width."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netsculpt.graph import trace
from netsculpt.measure import count_macs
from tests.coverage._check import check_prunes_exactly

GROUPED_MM = getattr(F, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)
pytestmark = pytest.mark.skipif(GROUPED_MM is None, reason="this torch has no grouped_mm")


class Experts(nn.Module):
    """Every token to expert ``token % experts`` (rows sorted by expert), weights stored (E, out, in) and
    transposed for ``grouped_mm`` as transformers' ``grouped_mm_experts_forward`` does."""

    def __init__(self, hidden: int = 8, inner: int = 16, experts: int = 3) -> None:
        super().__init__()
        self.inp, self.out = nn.Linear(6, hidden), nn.Linear(hidden, 4)
        self.gate_up_proj = nn.Parameter(torch.randn(experts, 2 * inner, hidden) * 0.3)
        self.down_proj = nn.Parameter(torch.randn(experts, hidden, inner) * 0.3)
        self.experts = experts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)  # (tokens, hidden)
        ids = torch.arange(h.shape[0]) % self.experts
        order = torch.argsort(ids, stable=True)
        offs = torch.cumsum(torch.bincount(ids, minlength=self.experts), 0).to(torch.int32)
        gate, up = GROUPED_MM(h[order], self.gate_up_proj.transpose(-2, -1), offs=offs).chunk(2, dim=-1)
        y = GROUPED_MM(F.silu(gate) * up, self.down_proj.transpose(-2, -1), offs=offs)
        return self.out(torch.zeros_like(y).index_copy(0, order, y) + h)


def test_expert_widths_prune_exactly_and_experts_stay() -> None:
    torch.manual_seed(0)
    x = torch.randn(7, 6)
    graph = trace(Experts(), x)
    (inner,) = [g for g in graph.groups if g.id == "gate_up_proj:1"]
    assert inner.size == 16 and inner.prunable.all()  # gate and up rows tied pairwise
    experts = [g for g in graph.groups if "routes rows to experts" in " ".join(g.reasons)]
    assert [g.id for g in experts] == ["gate_up_proj:0", "down_proj:0"]  # the router picks them by position
    assert all(g.size == 3 and not g.prunable.any() for g in experts)
    model = Experts()
    macs = count_macs(model, x)[0]
    assert macs >= 7 * 8 * 32 + 7 * 16 * 8  # the grouped matmuls are counted (they were 0)
    result = check_prunes_exactly(model, x)
    assert result["err"] <= 1e-6 and result["macs_ratio"] < 0.8
    assert model.gate_up_proj.shape == (3, 16, 8) and model.down_proj.shape == (3, 8, 8)


def test_tiny_mixtral_prunes_its_experts_exactly() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.MixtralConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, num_local_experts=4, num_experts_per_tok=2, pad_token_id=0,
    )  # fmt: skip
    model = transformers.MixtralForSequenceClassification(config).eval()

    class Logits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.model(ids).logits

    wrapped = Logits()
    ids = torch.randint(1, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    result = check_prunes_exactly(wrapped, ids)
    assert model.model.layers[0].mlp.experts.down_proj.shape[-1] == 32
    assert result["macs_ratio"] < 0.8
