"""Predictors learn a ranking, train deterministically, and save / load only for their own space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.predictors import GraphFeatures, Predictor, rank_quality


def _candidates(space, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    low = space.floors / space.sizes
    return [space.from_ratios(rng.uniform(low, 1.0)) for _ in range(n)]


def _damage(space, counts: np.ndarray) -> float:
    """A smooth stand-in for a loss: narrow first layers hurt most (log of kept ratios, weighted)."""
    return float(-np.log(space.ratios(counts)) @ np.array([3.0, 2.0, 1.0]))


@pytest.mark.parametrize(
    ("kind", "extended", "loss"),
    [("gcn", False, "mse"), ("mlp", False, "mse"), ("gcn", True, "rank"), ("mlp", False, "rank")],
)
def test_predictor_ranks_unseen_candidates(tiny_space, kind: str, extended: bool, loss: str) -> None:
    space = tiny_space.space
    train, test = _candidates(space, 40, 0), _candidates(space, 20, 1)
    features = GraphFeatures(space, tiny_space.model, extended=True) if extended else tiny_space.features
    p = Predictor(kind, features, {}, loss=loss).fit(train, [_damage(space, c) for c in train])
    tau = kendalltau(p.predict(test), [_damage(space, c) for c in test]).statistic
    assert tau > 0.6  # a smooth function of the widths: far better than chance (0)


def test_training_is_deterministic_and_saves_without_pickle(tiny_space, tmp_path: Path) -> None:
    space, f = tiny_space.space, tiny_space.features
    data = _candidates(space, 20, 2)
    target = [_damage(space, c) for c in data]
    fp = f.fingerprint(tiny_space.model)
    a = Predictor("gcn", f, fp).fit(data, target, epochs=50)
    b = Predictor("gcn", f, fp).fit(data, target, epochs=50)
    assert np.array_equal(a.predict(data), b.predict(data))
    a.save(tmp_path / "p")
    assert {p.name for p in tmp_path.iterdir()} == {"p.json", "p.safetensors"}
    loaded = Predictor.load(tmp_path / "p", f, fp)
    assert np.array_equal(loaded.predict(data), a.predict(data))


def test_a_predictor_for_another_model_or_space_is_refused(tiny_space, tmp_path: Path) -> None:
    f = tiny_space.features
    fp = f.fingerprint(tiny_space.model)
    Predictor("mlp", f, fp).save(tmp_path / "p")
    other = {**fp, "weights": "0" * 16, "groups": [["conv1", 9]]}
    with pytest.raises(ConfigError, match=r"another model or search space.*groups, weights"):
        Predictor.load(tmp_path / "p", f, other)


@pytest.mark.parametrize("damage", ["truncated", "other_network"])
def test_damaged_predictor_weights_are_refused_with_what_to_do(
    tiny_space, tmp_path: Path, damage: str
) -> None:
    # before: safetensors' own error (cut-off file) or torch's load_state_dict traceback (another network)
    f = tiny_space.features
    fp = f.fingerprint(tiny_space.model)
    Predictor("gcn", f, fp).save(tmp_path / "p")
    weights = tmp_path / "p.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:40])
    else:
        Predictor("mlp", f, fp).save(tmp_path / "other")
        weights.write_bytes((tmp_path / "other.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"as safetensors|train it again") as info:
        Predictor.load(tmp_path / "p", f, fp)
    assert info.value.__cause__ is None


def test_rank_quality_uses_scipy_and_needs_two_points() -> None:
    q = rank_quality([1, 2, 3, 4], [10, 20, 40, 30])
    assert q["kendall"] == pytest.approx(2 / 3) and q["spearman"] == pytest.approx(0.8)
    assert rank_quality([1], [2])["kendall"] is None  # undefined: None, valid JSON (no NaN)


def test_an_unknown_loss_is_refused(tiny_space) -> None:
    data = _candidates(tiny_space.space, 4, 3)
    with pytest.raises(ValueError, match="loss='huber'"):
        Predictor("gcn", tiny_space.features, {}, loss="huber").fit(data, [1.0, 2.0, 3.0, 4.0])
