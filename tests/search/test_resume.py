"""A killed search resumes from its state file: same result as an uninterrupted run, no work redone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsculpt.errors import ConfigError
from netsculpt.search import GeneticConfig, GreedyConfig, NSGA2Config, SensitivityConfig, search_widths
from netsculpt.search.executors import SerialExecutor


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


class CountingExecutor(SerialExecutor):
    """Scores as the default executor does, counting every candidate it is asked to score."""

    def __init__(self) -> None:
        super().__init__()
        self.scored = 0

    def map(self, jobs):
        self.scored += len(jobs)
        return super().map(jobs)


@pytest.mark.parametrize(
    ("method", "config"),
    [
        ("nsga2", NSGA2Config(pop_size=6, generations=2, eval_batches=1, full_batches=3)),
        ("genetic", GeneticConfig(pop_size=6, generations=2, elite=2, eval_batches=1, full_batches=3)),
        ("greedy", GreedyConfig(step=0.25)),
        ("sensitivity", SensitivityConfig(ratios=(0.25, 0.5, 0.75))),
    ],
)
def test_a_finished_search_resumed_returns_its_result_scoring_nothing(tiny, tmp_path, method, config) -> None:
    """NSGA-II re-scored its whole final front (and greedy / sensitivity their pick's full score): those
    come after the last per-step state save, so a replay did not find them in the cache."""
    args = (tiny.model, tiny.example, method, "macs=0.5", tiny.train, tiny.val, config)
    first = search_widths(*args, out_dir=tmp_path)
    counting = CountingExecutor()
    again = search_widths(*args, out_dir=tmp_path, resume=True, executor=counting)
    assert counting.scored == 0 and again.evaluated == {"cheap": 0, "full": 0}
    assert again.plan.keep == first.plan.keep and again.plan.meta == first.plan.meta
    assert again.plans.keys() == first.plans.keys() and again.history == first.history
    assert again.files == first.files
