"""Candidates as layer graphs: the structure follows the data flow, features follow the widths."""

from __future__ import annotations

import numpy as np
import pytest

import netsculpt as ns
from netsculpt.measure.macs import count_macs
from netsculpt.predictors import FEATURES, GraphFeatures


def test_nodes_are_the_layers_and_edges_the_shared_channels(tiny_space) -> None:
    f = tiny_space.features
    assert f.nodes == ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "fc"]
    a = f.adjacency.numpy()
    assert np.allclose(a, a.T)
    i = {n: k for k, n in enumerate(f.nodes)}
    assert a[i["conv1"], i["conv2"]] > 0  # conv1's outputs are conv2's inputs
    assert a[i["conv3"], i["fc"]] > 0
    assert a[i["conv1"], i["conv3"]] == 0  # no channel in common
    # D^-1/2 (A + I) D^-1/2 has eigenvalues in (-1, 1]: repeated layers cannot blow features up
    assert np.linalg.eigvalsh(a).max() == pytest.approx(1.0, abs=1e-5)


def test_features_follow_the_widths_and_the_exact_macs(tiny_space) -> None:
    space, f = tiny_space.space, tiny_space.features
    counts = np.array([4, 8, 12])  # conv1, conv2, conv3 groups
    x = f.graph([counts, space.full()]).numpy()
    assert x.shape == (2, len(f.nodes), len(FEATURES))
    col = {name: k for k, name in enumerate(FEATURES)}
    i = {n: k for k, n in enumerate(f.nodes)}
    assert x[0, i["conv2"], col["out_kept"]] == pytest.approx(8 / 16)
    assert x[0, i["conv2"], col["in_kept"]] == pytest.approx(4 / 8)
    assert x[0, i["fc"], col["out_kept"]] == 1.0  # the classifier's outputs are not searched
    assert x[1, :, col["macs_share"]] == pytest.approx(x[1, :, col["base_macs_share"]])
    # a node's MACs share is its share of the pruned model's MACs, as measured on the built model
    small = ns.apply_plan(tiny_space.model, space.plan(counts), tiny_space.example)
    total, layers = count_macs(small, tiny_space.example)
    conv2 = next(layer.macs for layer in layers if layer.name == "conv2")
    assert x[0, i["conv2"], col["macs_share"]] == pytest.approx(conv2 / total, rel=1e-6)


def test_extended_features_add_own_macs_total_macs_and_width(tiny_space) -> None:
    space = tiny_space.space
    f = GraphFeatures(space, tiny_space.model, extended=True)
    counts = np.array([4, 8, 12])
    x = f.graph([counts, space.full()]).numpy()
    assert x.shape == (2, len(f.nodes), len(FEATURES) + 3)
    col = {name: k for k, name in enumerate(f.names)}
    i = {n: k for k, n in enumerate(f.nodes)}
    assert np.allclose(x[1, :, col["macs_kept"]], 1.0) and np.allclose(x[1, :, col["total_macs"]], 1.0)
    assert x[0, i["conv2"], col["macs_kept"]] == pytest.approx((8 / 16) * (4 / 8))  # outputs x inputs kept
    assert x[0, 0, col["total_macs"]] == pytest.approx(space.cost(counts, "macs"), rel=1e-5)
    assert x[0, i["fc"], col["out_width"]] == 1.0  # not searched
    assert (
        f.fingerprint(tiny_space.model)["features"]
        != tiny_space.features.fingerprint(tiny_space.model)["features"]
    )
