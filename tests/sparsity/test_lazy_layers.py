"""sparsify on a model whose lazy layers have seen no input: refused up front (before: torch's "Can't
access the shape of an uninitialized parameter" RuntimeError from inside the mask planning)."""

from __future__ import annotations

from netsculpt.errors import ConfigError
from netsculpt.sparsity import SparsityConfig, sparsify
from netsculpt.train import TrainConfig
from tests._lazy import X, Y, assert_refused


def test_sparsifying_a_lazy_model_is_refused() -> None:
    data = [(X, Y)]
    assert_refused(
        lambda m: sparsify(m, SparsityConfig(sparsity=0.5), data, data, TrainConfig(epochs=1)),
        "sparsify",
        ConfigError,
    )
