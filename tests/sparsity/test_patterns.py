"""Masks: the kept fraction, the N:M and block structure, and errors that name the layer."""

from __future__ import annotations

import itertools

import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.sparsity import cubic_sparsity, layer_mask, parse_pattern
from netsculpt.sparsity.patterns import global_masks


def test_unstructured_keeps_the_largest_fraction() -> None:
    weight = torch.randn(16, 8, 3, 3)
    mask = layer_mask(weight, parse_pattern("unstructured"), 0.9, "conv")
    assert mask.shape == weight.shape
    assert int(mask.sum()) == round(0.1 * weight.numel())
    assert weight[mask].abs().min() >= weight[~mask].abs().max()


@pytest.mark.parametrize("text", ["2:4", "4:8", "1:4"])
def test_nm_keeps_n_of_every_m_along_the_reduction(text: str) -> None:
    n, m = map(int, text.split(":"))
    weight = torch.randn(8, 16, 3, 3)
    mask = layer_mask(weight, parse_pattern(text), 0.0, "conv")
    groups = mask.reshape(8, -1, m)
    assert (groups.sum(-1) == n).all()
    w = weight.reshape(8, -1, m).abs()
    kept_min = torch.where(groups, w, torch.inf).min(-1).values
    dropped_max = torch.where(groups, -torch.inf, w).max(-1).values
    assert (kept_min >= dropped_max).all()


def test_block_mask_is_made_of_whole_blocks() -> None:
    weight = torch.randn(16, 32)
    mask = layer_mask(weight, parse_pattern("block", (4, 8)), 0.75, "fc")
    blocks = mask.reshape(4, 4, 4, 8).permute(0, 2, 1, 3).reshape(4, 4, -1)
    assert ((blocks.all(-1)) | (~blocks.any(-1))).all()
    assert int(blocks.all(-1).sum()) == 4  # 25% of 16 blocks


def test_pattern_that_does_not_divide_names_the_layer() -> None:
    with pytest.raises(ConfigError, match=r"features\.0.*not a multiple of 4.*skip: \[features\.0\]"):
        layer_mask(torch.randn(4, 3, 1, 1), parse_pattern("2:4"), 0.5, "features.0")
    with pytest.raises(ConfigError, match=r"head.*block"):
        layer_mask(torch.randn(10, 16), parse_pattern("block", (4, 4)), 0.5, "head")
    with pytest.raises(ConfigError, match="N:M"):
        parse_pattern("4:2")
    with pytest.raises(ConfigError, match="not one of"):
        parse_pattern("diagonal")


def test_global_masks_share_one_threshold() -> None:
    small, large = torch.randn(100) * 0.01, torch.randn(100)
    masks = global_masks({"a": small, "b": large}, 0.5)
    assert int(masks["a"].sum() + masks["b"].sum()) == 100
    assert masks["b"].sum() > masks["a"].sum()


def test_global_masks_keep_every_layer_connected() -> None:
    """A layer of tiny weights keeps its floor (a tenth of a per-layer split's share), and no more:
    the overall fraction stays exact and the threshold decides everything else."""
    tiny, large = torch.randn(1000) * 1e-4, torch.randn(9000)
    masks = global_masks({"tiny": tiny, "large": large}, 0.9)
    assert int(masks["tiny"].sum()) == 10  # ceil(0.1 * 0.1 * 1000); one threshold alone keeps none
    assert int(masks["tiny"].sum() + masks["large"].sum()) == 1000
    assert bool(masks["tiny"][tiny.abs().topk(10).indices].all())
    loose = global_masks({"tiny": tiny, "large": large}, 0.9, floor=0.0)
    assert int(loose["tiny"].sum()) == 1  # at least one weight even with no floor
    big = {"a": torch.randn(100), "b": torch.randn(100) * 2}
    assert torch.equal(global_masks(big, 0.5)["a"], global_masks(big, 0.5, floor=0.0)["a"])  # not binding


def test_cubic_ramp_ends_on_target_and_front_loads() -> None:
    levels = [cubic_sparsity(k, 4, 0.9) for k in range(5)]
    assert levels[0] == 0.0 and levels[-1] == pytest.approx(0.9)
    assert all(a < b for a, b in itertools.pairwise(levels))
    assert levels[1] - levels[0] > levels[4] - levels[3]  # Zhu & Gupta: fast first, slow near the end
