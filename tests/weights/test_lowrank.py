"""Low-rank factorisation: error equals the discarded energy, full rank is exact, budgets are met."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.measure import count_macs
from netsculpt.weights.lowrank import (
    LowRankConfig,
    factorize_,
    rank_for_energy,
    retained,
    spatial_matrix,
    spatial_svd_conv,
    svd_linear,
    tucker2_conv,
)


def _rel_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return float(((approx - exact).square().sum() / exact.square().sum()).detach())


def test_svd_linear_error_is_the_discarded_energy() -> None:
    layer = nn.Linear(40, 30)
    s = torch.linalg.svdvals(layer.weight.detach().double())
    for energy in (0.5, 0.8, 0.95):
        rank = rank_for_energy(s, energy)
        assert retained(s, rank) >= energy > retained(s, rank - 1)  # the smallest rank that keeps it
        chain = svd_linear(layer, rank)
        product = chain[1].weight.double() @ chain[0].weight.double()
        # Eckart-Young: ||W - W_r||^2 = sum of the discarded s_i^2 (float32 weights: ~1e-6 relative)
        assert _rel_error(product, layer.weight.double()) == pytest.approx(1 - retained(s, rank), abs=1e-5)


def test_spatial_svd_error_is_the_discarded_energy_and_full_rank_is_exact() -> None:
    conv = nn.Conv2d(6, 8, 3, stride=2, padding=1)
    s = torch.linalg.svdvals(spatial_matrix(conv))
    x = torch.randn(2, 6, 11, 9)
    full = spatial_svd_conv(conv, len(s))
    assert torch.allclose(full(x), conv(x), atol=1e-5)
    rank = rank_for_energy(s, 0.7)
    chain = spatial_svd_conv(conv, rank)
    # the composed kernel: W'[o, i, y, x] = sum_r V[r, i, y] H[o, r, x]
    kernel = torch.einsum(
        "riy,orx->oiyx", chain[0].weight[..., 0].double(), chain[1].weight[:, :, 0].double()
    )
    assert _rel_error(kernel, conv.weight.double()) == pytest.approx(1 - retained(s, rank), abs=1e-5)


def test_tucker2_full_rank_exact_and_error_within_hosvd_bound() -> None:
    conv = nn.Conv2d(12, 16, 3, padding=1, bias=True)
    x = torch.randn(2, 12, 7, 7)
    assert torch.allclose(tucker2_conv(conv, 16, 12)(x), conv(x), atol=1e-5)
    chain = tucker2_conv(conv, 8, 6)
    kernel = torch.einsum(
        "ro,rskl,si->oikl",
        chain[2].weight[:, :, 0, 0].double().T,
        chain[1].weight.double(),
        chain[0].weight[:, :, 0, 0].double(),
    )
    w = conv.weight.detach().double()
    s_out = torch.linalg.svdvals(w.flatten(1))
    s_in = torch.linalg.svdvals(w.transpose(0, 1).flatten(1))
    # HOSVD truncation: error^2 <= discarded energy of mode 0 + discarded energy of mode 1
    bound = (1 - retained(s_out, 8)) + (1 - retained(s_in, 6))
    assert _rel_error(kernel, w) <= bound + 1e-6


def test_factorize_model_meets_macs_target() -> None:
    model = nn.Sequential(
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 64),
    )
    x = torch.randn(1, 16, 8, 8)
    before, _ = count_macs(model, x)
    records = factorize_(model, LowRankConfig(energy=None, macs_ratio=0.4))
    after, _ = count_macs(model, x)
    assert {r.name for r in records} == {"0", "2", "4"} and isinstance(model[0], nn.Sequential)
    assert after <= 0.4 * before  # stride 1: every chain runs at its layer's resolution
    assert model(x).shape == (1, 64)


def test_layers_that_would_grow_are_left_alone_and_bad_configs() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    assert factorize_(model, LowRankConfig(energy=1.0)) == [] and isinstance(model[0], nn.Linear)
    with pytest.raises(ConfigError, match="exactly one"):
        LowRankConfig(energy=0.9, macs_ratio=0.5)
    with pytest.raises(ConfigError, match="conv_method"):
        LowRankConfig(conv_method="cp")


@pytest.mark.parametrize("conv_method", ["tucker2", "spatial"])
def test_a_pruned_then_factorised_model_saves_and_loads_exactly(tmp_path, conv_method: str) -> None:
    import netsculpt as ns

    torch.manual_seed(0)
    model = ns.create_model("resnet20_cifar", num_classes=10, in_channels=3)
    x = torch.randn(2, 3, 32, 32)
    model = ns.prune(model, x, criterion="l1", ratio=0.25)
    factorize_(model, LowRankConfig(energy=None, macs_ratio=0.6, conv_method=conv_method))
    model.eval()
    ns.save(model, tmp_path / "m")
    again = ns.load(tmp_path / "m")
    assert [n for n, _ in again.named_modules()] == [n for n, _ in model.named_modules()]
    assert torch.equal(again(x), model(x))


def test_a_factorisation_record_naming_a_missing_layer_is_refused(tmp_path) -> None:
    import json

    import netsculpt as ns
    from netsculpt.errors import CheckpointError

    model = ns.create_model("lenet5")
    factorize_(model, LowRankConfig(energy=0.5))
    ns.save(model, tmp_path / "m")
    spec_file = tmp_path / "m" / "netsculpt.json"
    data = json.loads(spec_file.read_text())
    data["edits"][-1]["layers"][0]["name"] = "no_such_layer"
    spec_file.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="no_such_layer"):
        ns.load(tmp_path / "m")


class _Odd(torch.nn.Module):
    """Everything factorize_ must leave alone: attention internals, a reflect-padded conv, an all-zero
    layer, a layer registered twice; and one plain layer it should factorise."""

    def __init__(self) -> None:
        super().__init__()
        self.reflect = torch.nn.Conv2d(3, 32, 3, padding=1, padding_mode="reflect")
        self.conv = torch.nn.Conv2d(32, 32, 3, padding=1)
        self.encoder = torch.nn.TransformerEncoderLayer(32, 2, 64, batch_first=True)
        self.zero = torch.nn.Linear(32, 32)
        self.tied = torch.nn.Linear(32, 32)
        self.alias = self.tied
        torch.nn.init.zeros_(self.zero.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.reflect(x)).flatten(2).transpose(1, 2)
        return self.alias(self.tied(self.zero(self.encoder(h)))).mean(1)


def test_layers_a_chain_cannot_replace_are_left_alone_and_the_model_still_runs(tmp_path) -> None:
    torch.manual_seed(0)
    model = _Odd().eval()
    x = torch.randn(2, 3, 6, 6)
    done = factorize_(model, LowRankConfig(energy=0.5))
    assert [d.name for d in done] == ["conv"]
    assert model.alias is model.tied and isinstance(model.reflect, torch.nn.Conv2d)
    with torch.no_grad():
        model(x)  # attention's fused path still finds its weights


@pytest.mark.parametrize("method", ["tucker2", "spatial"])
def test_a_strided_conv_meets_its_macs_budget(method: str) -> None:
    """The first layer of the chain runs at the input resolution: budgets missed by 0.18-0.25 at stride 2."""
    from netsculpt.measure import count_macs

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(64, 64, 3, stride=2, padding=1))
    x = torch.randn(1, 64, 16, 16)
    before = count_macs(model, x)[0]
    factorize_(model, LowRankConfig(energy=None, macs_ratio=0.5, conv_method=method))
    assert count_macs(model, x)[0] <= 0.5 * before


def test_the_low_rank_and_int8_entry_points_are_in_netsculpt_weights() -> None:
    # docs/weights.md describes `netsculpt.weights` as palettization, int8 and low-rank, and writes
    # `factorize_(model, LowRankConfig(energy=0.9))`; only the palettization names were importable from it
    import netsculpt.weights as weights
    from netsculpt.weights import LowRankConfig, factorize_

    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(64, 4) @ torch.randn(4, 64))  # rank 4: two factors are smaller
    x = torch.randn(4, 64)
    before = model(x)
    done = factorize_(model, LowRankConfig(energy=0.9999))
    assert [f.name for f in done] == ["0"] and torch.allclose(model(x), before, atol=1e-3)
    for name in ("lowrank_model", "Int8Config", "OnnxModule", "quantize_int8"):
        assert name in weights.__all__ and hasattr(weights, name), name


def test_a_macs_budget_alone_is_one_setting_not_two() -> None:
    # docs/weights.md: the rank keeps `energy` ... or meets a MACs budget `macs_ratio`; energy's default
    # of 0.9 made LowRankConfig(macs_ratio=0.5) fail "set exactly one of energy and macs_ratio"
    assert LowRankConfig(macs_ratio=0.5).energy is None
    assert LowRankConfig().energy == 0.9
    with pytest.raises(ConfigError, match="exactly one of energy"):
        LowRankConfig(energy=0.9, macs_ratio=0.5)
