"""ERK: the model keeps exactly the asked fraction, small layers denser, big ones sparser."""

from __future__ import annotations

import math

import pytest

from netsculpt.errors import ConfigError
from netsculpt.sparsity import SparsityConfig
from netsculpt.sparsity.distribution import erk_sparsities

RESNET20_LIKE = {
    "stage1": (16, 16, 3, 3),
    "stage2": (32, 32, 3, 3),
    "stage3": (64, 64, 3, 3),
    "shortcut": (64, 32, 1, 1),
    "fc": (10, 64),
}


def _overall(shapes: dict[str, tuple[int, ...]], per_layer: dict[str, float]) -> float:
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    return sum(per_layer[n] * sizes[n] for n in shapes) / sum(sizes.values())


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9, 0.95])
def test_erk_keeps_the_asked_fraction_overall(sparsity: float) -> None:
    per_layer = erk_sparsities(RESNET20_LIKE, sparsity)
    assert _overall(RESNET20_LIKE, per_layer) == pytest.approx(sparsity, abs=1e-9)
    assert all(0.0 <= s < 1.0 for s in per_layer.values())


def test_erk_makes_small_layers_denser_and_caps_them_at_dense() -> None:
    per_layer = erk_sparsities(RESNET20_LIKE, 0.9)
    assert per_layer["stage1"] < per_layer["stage2"] < per_layer["stage3"]
    assert per_layer["fc"] == 0.0  # (10 + 64) / 640 would ask for more than dense: kept dense, rest re-solved
    assert per_layer["stage3"] > 0.9


def test_erk_at_zero_sparsity_keeps_everything_and_refuses_other_patterns() -> None:
    assert erk_sparsities(RESNET20_LIKE, 0.0) == dict.fromkeys(RESNET20_LIKE, 0.0)
    with pytest.raises(ConfigError, match="unstructured"):
        SparsityConfig(pattern="2:4", scope="erk")
