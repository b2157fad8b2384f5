"""The post-training k-means baseline: finds real clusters, beats uniform levels, palettizes layers."""

from __future__ import annotations

import torch

from netsculpt.weights import KMeansConfig, cluster_model, fit_codebook, iter_palettes, kmeans_palettize_
from tests.weights._models import TinyNet


def test_fit_codebook_recovers_planted_centres() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([-1.0, -0.2, 0.5, 2.0])
    points = (centres[torch.randint(0, 4, (4000,), generator=g)] + 0.01 * torch.randn(4000, generator=g))[
        :, None
    ]
    found = fit_codebook(points, 4, n_init=1)
    assert found.shape == (4, 1)
    assert torch.allclose(found[:, 0], centres, atol=0.005)  # 1,000 points each: mean error ~0.01/sqrt(1000)


def test_fewer_distinct_values_than_centroids() -> None:
    points = torch.tensor([[0.5], [0.5], [-1.0]])
    assert set(fit_codebook(points, 4)[:, 0].tolist()) == {0.5, -1.0}


def test_a_sparse_layer_keeps_its_zeros_exact_after_kmeans() -> None:
    """Sparsify, then cluster: the zero cluster's fitted mean would be ~1e-6 (its tiny non-zero
    members), turning every zero into that value; a pinned exact-zero centroid keeps them zero."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 7))
    with torch.no_grad():  # 75 % zeros, survivors shrunk towards zero as fine-tuning leaves them
        w = net[0].weight
        t = w.abs().quantile(0.75)
        w.copy_(torch.sign(w) * (w.abs() - t).clamp_min(0))
    zeros = net[0].weight == 0
    kmeans_palettize_(net, KMeansConfig(bits=4, n_init=1))
    assert torch.equal(net[0].weight[zeros], torch.zeros(int(zeros.sum())))
    assert (net[0].weight == 0).float().mean() >= zeros.float().mean()
    assert len(torch.unique(net[0].weight)) <= 16


def test_all_zero_and_dense_groups() -> None:
    assert torch.equal(fit_codebook(torch.zeros(50, 2), 4), torch.zeros(4, 2))
    dense = torch.randn(500, 1)  # no exact zeros: no centroid is pinned at 0
    assert not (fit_codebook(dense, 4) == 0).any()


def test_kmeans_error_below_uniform_levels_and_falls_with_bits() -> None:
    torch.manual_seed(0)
    weight = torch.randn(64, 32) * torch.rand(64, 1)  # heavy-tailed like trained weights
    errors = []
    for bits in (1, 2, 3, 4):
        layer = torch.nn.Linear(32, 64)
        layer.weight.data.copy_(weight)
        kmeans_palettize_(torch.nn.Sequential(layer), KMeansConfig(bits=bits, n_init=1))
        assert torch.unique(layer.weight).numel() <= 2**bits
        errors.append(float((layer.weight.detach() - weight).square().mean()))
        # uniform levels over [min, max]: what plain linear quantization with the same bits would give
        lo, hi = weight.min(), weight.max()
        step = (hi - lo) / (2**bits - 1)
        uniform = lo + torch.round((weight - lo) / step) * step
        assert errors[-1] < float((uniform - weight).square().mean())
    assert errors == sorted(errors, reverse=True)


def test_cluster_model_dispatches_kmeans_without_data() -> None:
    model = cluster_model(TinyNet(), KMeansConfig(bits=2, n_init=1))
    assert {k for k, _ in iter_palettes(model)} == {"conv1.weight", "conv2.weight", "fc.weight"}
