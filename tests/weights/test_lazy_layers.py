"""Weight compression of a model whose lazy layers have seen no input: refused, naming the fix (before:
torch's raw "Attempted to use an uninitialized parameter" ValueError from deep inside each method)."""

from __future__ import annotations

import pytest

from netsculpt.errors import ConfigError
from netsculpt.weights import (
    DKMConfig,
    KMeansConfig,
    cluster_model,
    config_for,
    kmeans_palettize_,
    prepare_dkm_,
)
from netsculpt.weights.bit_space import BitSpace
from netsculpt.weights.int_space import IntSpace
from netsculpt.weights.lowrank import LowRankConfig, factorize_
from tests._lazy import X, Y, assert_refused, materialised_lazy_net

CALLS = {
    "cluster_model kmeans": (lambda m: cluster_model(m, config_for("kmeans", bits=2)), "cluster"),
    "cluster_model dkm": (
        lambda m: cluster_model(m, config_for("dkm", bits=2), [(X, Y)], [(X, Y)]),
        "cluster",
    ),
    "kmeans_palettize_": (lambda m: kmeans_palettize_(m, KMeansConfig(bits=2)), "cluster"),
    "prepare_dkm_": (lambda m: prepare_dkm_(m, DKMConfig(bits=2)), "cluster"),
    "factorize_": (lambda m: factorize_(m, LowRankConfig()), "factorise"),
    "BitSpace (HAQ)": (lambda m: BitSpace(m, KMeansConfig(bits=2)), "search bit widths for"),
    "IntSpace (HAQ)": (lambda m: IntSpace(m), "search bit widths for"),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_compressing_a_lazy_model_is_refused_and_leaves_it_lazy(call: str) -> None:
    fn, verb = CALLS[call]
    assert_refused(fn, verb, ConfigError)


def test_once_materialised_it_clusters() -> None:
    model = materialised_lazy_net()
    assert cluster_model(model, config_for("kmeans", bits=2)) is model
