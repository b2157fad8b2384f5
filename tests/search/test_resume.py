"""A killed search resumes from its state file: same result as an uninterrupted run, no work redone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsculpt.errors import ConfigError
from netsculpt.search import GeneticConfig, GreedyConfig, search_widths


class Killed(Exception):
    """Stands in for SIGKILL: raised right after a step's state was saved."""


def _kill_at(key: str, value: int):
    def on_step(progress: dict) -> None:
        if progress.get(key) == value:
            raise Killed

    return on_step


@pytest.mark.parametrize("pop_size", [6, 8])
def test_killed_genetic_search_resumes_exactly(tiny, tmp_path: Path, pop_size: int) -> None:
    """At 8 the killed run full-scores, in generation 2, candidates it ranked on cheap scores before: the
    replay used to read those later full scores as their fitness and parted from the killed run."""
    config = GeneticConfig(pop_size=pop_size, generations=4, elite=2, eval_batches=1, full_batches=3)
    args = (tiny.model, tiny.example, "genetic", "macs=0.5", tiny.train, tiny.val, config)
    reference = search_widths(*args)
    with pytest.raises(Killed):
        search_widths(*args, out_dir=tmp_path, on_step=_kill_at("generation", 2))
    saved = json.loads((tmp_path / "search_state.json").read_text())
    assert saved["progress"]["generation"] == 2
    assert len(saved["progress"]["generations"]) == 3  # the initial population and two generations

    resumed = search_widths(*args, out_dir=tmp_path, resume=True)
    assert resumed.plan.keep == reference.plan.keep
    populations = [[row["widths"] for row in g["population"]] for g in resumed.history["generations"]]
    assert populations == [
        [row["widths"] for row in g["population"]] for g in reference.history["generations"]
    ]
    for level in ("cheap", "full"):  # everything scored before the kill came from the saved cache
        assert resumed.evaluated[level] == reference.evaluated[level] - len(saved["cache"][level])


def test_greedy_resume_replays_the_saved_trajectory(tiny, tmp_path: Path) -> None:
    args = (tiny.model, tiny.example, "greedy", "macs=0.4", tiny.train, tiny.val, GreedyConfig(step=0.2))
    with pytest.raises(Killed):
        search_widths(*args, out_dir=tmp_path, on_step=_kill_at("step", 2))
    resumed = search_widths(*args, out_dir=tmp_path, resume=True)
    fresh = search_widths(*args)
    assert resumed.history["trajectory"] == fresh.history["trajectory"]
    assert resumed.evaluated["cheap"] < fresh.evaluated["cheap"]


def test_existing_state_needs_resume_and_the_same_settings(tiny, tmp_path: Path) -> None:
    args = (tiny.model, tiny.example, "greedy", "macs=0.6", tiny.train, tiny.val)
    search_widths(*args, GreedyConfig(step=0.25), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="resume"):
        search_widths(*args, GreedyConfig(step=0.25), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="config"):
        search_widths(*args, GreedyConfig(step=0.5), out_dir=tmp_path, resume=True)
