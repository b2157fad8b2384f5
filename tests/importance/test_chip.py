"""CHIP's fast nuclear-norm drops against the definition (C + 1 SVDs), and the criterion end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.importance import get_criterion
from netsculpt.importance.chip import nuclear_norm_drops, nuclear_norm_drops_eig, nuclear_norm_drops_naive

RTOL = 1e-6  # the bar: fast == naive within 1e-6 relative (to the largest score)


def _maps(c: int, d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    a = torch.relu(torch.randn(c, d, generator=gen, dtype=torch.float64))
    a[0] = 0  # a dead channel: removing it changes nothing
    return a


@pytest.mark.parametrize(
    ("c", "d"),
    [(16, 1024), (32, 256), (64, 64), (48, 16), (7, 3), (1, 5), (5, 1), (6, 6)],  # C < HW, C = HW, C > HW
)
def test_fast_forms_match_the_definition(c: int, d: int) -> None:
    a = _maps(c, d, seed=c * 1000 + d)
    naive = nuclear_norm_drops_naive(a)
    scale = naive.abs().max()
    for fast in (nuclear_norm_drops, nuclear_norm_drops_eig):
        got = fast(a[None])[0]
        assert torch.max((got - naive).abs()) <= RTOL * scale, fast.__name__
    assert nuclear_norm_drops(a[None])[0, 0].abs() <= RTOL * scale  # the dead channel


def test_rank_deficient_and_degenerate_inputs() -> None:
    low = torch.randn(20, 3, dtype=torch.float64) @ torch.randn(3, 40, dtype=torch.float64)  # rank 3
    same = torch.ones(4, 9, dtype=torch.float64)  # identical rows: every drop is equal
    for a in (low, same):
        np.testing.assert_allclose(
            nuclear_norm_drops(a[None])[0], nuclear_norm_drops_naive(a), atol=RTOL * a.norm().item()
        )
    assert torch.equal(nuclear_norm_drops(torch.zeros(2, 3, 8)), torch.zeros(2, 3, dtype=torch.float64))


def test_criterion_is_the_mean_drop_of_post_activation_maps() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 3)).eval()
    data = [(torch.randn(5, 2, 8, 8), torch.zeros(5, dtype=torch.long)) for _ in range(2)]
    graph = ns.trace(model, data[0][0][:1])
    scores = get_criterion("chip").score(model, graph, data)["0"]
    with torch.no_grad():
        maps = torch.cat([torch.relu(model[0](x)) for x, _ in data]).flatten(2)
    expected = torch.stack([nuclear_norm_drops_naive(m) for m in maps]).mean(0)
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-5)
