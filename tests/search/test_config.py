"""Search settings: validation with clear errors, JSON round-trip, and target parsing."""

from __future__ import annotations

import pytest

from netsculpt.allocate import Target
from netsculpt.errors import ConfigError
from netsculpt.search import GeneticConfig, GreedyConfig, NSGA2Config, SensitivityConfig, parse_targets


@pytest.mark.parametrize("cls", [SensitivityConfig, GreedyConfig, GeneticConfig, NSGA2Config])
def test_configs_round_trip_through_json_data(cls) -> None:
    config = cls(seed=3, eval_batches=1, full_batches=3)
    again = cls.from_dict(config.to_dict())
    assert again == config


def test_fingerprint_ignores_where_candidates_run() -> None:
    """Workers and the Ray address change speed, not results: a search may resume under other ones."""
    assert (
        GeneticConfig(workers=0).fingerprint() == GeneticConfig(workers=4, ray_address="auto").fingerprint()
    )
    assert GeneticConfig(seed=0).fingerprint() != GeneticConfig(seed=1).fingerprint()


@pytest.mark.parametrize(
    ("cls", "kwargs", "word"),
    [
        (GeneticConfig, {"metric": "f1"}, "metric"),
        (GeneticConfig, {"eval_batches": 4, "full_batches": 2}, "full_batches"),
        (GeneticConfig, {"elite": 9, "pop_size": 8}, "elite"),
        (SensitivityConfig, {"ratios": (0.5, 1.2)}, "ratios"),
        (GreedyConfig, {"step": 1.5}, "step"),
        (NSGA2Config, {"pop_size": 2}, "pop_size"),
    ],
)
def test_bad_settings_name_the_field(cls, kwargs, word) -> None:
    with pytest.raises(ConfigError, match=word):
        cls(**kwargs)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="popsize"):
        GeneticConfig.from_dict({"popsize": 3})


def test_targets_from_every_spelling_sorted_largest_first() -> None:
    targets = parse_targets([Target(macs=0.3), "macs=0.6", {"macs": 0.5}])
    assert [t.value for t in targets] == [0.6, 0.5, 0.3]
    assert targets[0].label == "macs=0.6"
    assert parse_targets("latency=0.7")[0].metric == "latency"


@pytest.mark.parametrize(
    "bad", [Target(channels=0.5), "flops=0.5", ["macs=0.5", "params=0.5"], "macs=2", "macs=abc", []]
)
def test_bad_targets_are_refused(bad) -> None:
    with pytest.raises(ConfigError):
        parse_targets(bad)


def test_every_method_config_is_importable_from_netsculpt_search() -> None:
    # docs/search.md writes AMCConfig(policy=DIR) and N2NConfig(policy=DIR) beside GeneticConfig and
    # NAOConfig; only the latter were in netsculpt.search, so `from netsculpt.search import AMCConfig` failed
    import netsculpt.search as search
    from netsculpt.search.api import CONFIGS

    assert set(CONFIGS) == set(search.list_searchers())
    for method, cls in CONFIGS.items():
        assert getattr(search, cls.__name__, None) is cls, f"{method}: {cls.__name__} not in netsculpt.search"
        assert cls.__name__ in search.__all__
