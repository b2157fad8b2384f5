"""Rules and fixups registered by a class's dotted name, for libraries netsculpt never imports: the
built-in one for Hugging Face's ``Conv1D`` (graph/rules/huggingface.py), tested here without transformers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.utils.parametrize
from torch import nn

import netsculpt as ns
from netsculpt.errors import ConfigError
from netsculpt.graph import register_module_rule, trace
from netsculpt.graph.explain import pinned_macs
from netsculpt.measure import count_macs
from netsculpt.surgery import register_fixup
from tests.coverage._check import check_prunes_exactly


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D as transformers 5 writes it: a Linear with its weight (in, out)."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.2)
        self.bias = nn.Parameter(torch.randn(nf) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size_out = x.size()[:-1] + (self.nf,)  # noqa: RUF005 (transformers' own line)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


Conv1D.__module__ = "transformers.pytorch_utils"  # the class path the rule is registered under


class Mlp(nn.Module):
    """GPT-2's feed-forward block: c_fc -> GELU -> c_proj."""

    def __init__(self) -> None:
        super().__init__()
        self.c_fc, self.c_proj = Conv1D(32, 8), Conv1D(8, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(torch.nn.functional.gelu(self.c_fc(x)))


def test_hf_conv1d_hidden_units_prune_exactly() -> None:
    """Traced op by op, ``view(size_out)`` wrote ``nf`` as a constant and pinned every unit."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    graph = trace(Mlp().eval(), x)
    assert graph.group("c_fc").n_prunable == 32
    result = check_prunes_exactly(Mlp(), x)
    assert result["macs_ratio"] == pytest.approx(0.5)  # both layers lose half the hidden units


def test_hf_conv1d_fixup_keeps_nf_and_pinned_costs_read_roles() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    model = Mlp().eval()
    small = ns.prune(model, x, ratio=0.5)
    assert (small.c_fc.nx, small.c_fc.nf) == tuple(small.c_fc.weight.shape) == (8, 16)
    assert small(x).shape == (2, 5, 8)
    # c_fc's inputs and c_proj's outputs are the network's: named as such, though their weight dims are
    # swapped (dim 0 was read as the output side)
    found = {p.layer: p.reason for p in pinned_macs(trace(model, x), count_macs(small, x)[1])}
    assert found["c_fc"].startswith("input channels pinned") and "output channels" not in found["c_fc"]
    assert found["c_proj"].startswith("output channels pinned")


def test_a_parametrized_hf_conv1d_is_pinned_with_the_fix() -> None:
    model = Mlp().eval()
    torch.nn.utils.parametrize.register_parametrization(model.c_fc, "weight", nn.Identity())
    graph = trace(model, torch.randn(2, 5, 8))  # its weight is not among the module's own parameters
    assert not graph.prunable_groups
    assert "remove_parametrizations" in graph.group("c_fc.bias").reasons[0]


def test_a_rule_or_fixup_name_must_be_a_dotted_class_path() -> None:
    with pytest.raises(ConfigError, match="full dotted names"):
        register_module_rule("Conv1D")
    with pytest.raises(ConfigError, match="full dotted names"):
        register_fixup("not a name")


def test_hf_conv1d_is_timed_as_the_linear_it_computes() -> None:
    """Latency tables key and time it as ``nn.Linear`` (the same GEMM); it was scaled from the original."""
    from netsculpt.measure.latency_layers import describe_layer

    key, build = describe_layer(Conv1D(16, 8), (2, 5, 8), (2, 5, 16))
    assert key == "Linear(8,16,bias=True)" and build is not None and isinstance(build(), nn.Linear)
