"""``predictor="gcn"|"mlp"`` on the genetic search and NSGA-II: screening, fallback, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from netsculpt.errors import ConfigError
from netsculpt.search import GeneticConfig, GreedyConfig, NSGA2Config, search_widths
from tests.search.test_resume import Killed, _kill_at

SMALL = {"pop_size": 8, "generations": 3, "elite": 2, "eval_batches": 1, "full_batches": 2}


def test_screened_ga_scores_only_the_promising_share(tiny, tmp_path: Path) -> None:
    args = (tiny.model, tiny.example, "genetic", "macs=0.5", tiny.train, tiny.val)
    plain = search_widths(*args, GeneticConfig(**SMALL))
    config = GeneticConfig(
        **SMALL, predictor="gcn", predictor_min=8, screen_keep=0.25, screen_pool=2, screen_trust=-1
    )
    guided = search_widths(*args, config, out_dir=tmp_path)
    rounds = guided.history["predictor"]["rounds"]
    assert rounds[0]["fallback"] and rounds[0]["scored"] == 8  # the initial population: nothing to learn from
    for r in rounds[1:]:
        assert not r["fallback"] and r["scored"] == max(1, math.ceil(0.25 * r["pool"]))
    # once screening, a generation proposes screen_pool (2) x pop_size: more than a plain generation
    assert max(r["pool"] for r in rounds[1:]) > SMALL["pop_size"]
    assert all(r["pool"] <= 2 * SMALL["pop_size"] for r in rounds[1:])
    assert guided.evaluated["cheap"] < plain.evaluated["cheap"]
    assert guided.plan.meta["predicted"]["macs"] <= 0.5
    saved = json.loads((tmp_path / "predictor.json").read_text())
    assert saved["kind"] == "gcn" and saved["trained_on"] == rounds[-1]["trained_on"]
    assert (tmp_path / "predictor.safetensors").stat().st_size > 0


def test_too_few_candidates_fall_back_to_plain_scoring(tiny) -> None:
    args = (tiny.model, tiny.example, "genetic", "macs=0.5", tiny.train, tiny.val)
    plain = search_widths(*args, GeneticConfig(**SMALL))
    fallback = search_widths(*args, GeneticConfig(**SMALL, predictor="mlp", predictor_min=1000))
    summary = fallback.history["predictor"]
    assert not summary["trained"] and all(r["fallback"] for r in summary["rounds"])
    assert fallback.plan.keep == plain.plan.keep  # exactly the plain search
    assert fallback.evaluated == plain.evaluated


def test_a_predictor_that_never_earns_trust_is_exactly_the_plain_search(tiny) -> None:
    """screen_trust=1 needs a perfect online ranking: every generation after the first is a probe, which
    scores all proposals of a plain-sized generation, so the search is the plain one, evaluation for
    evaluation, with the predictor's rank checks recorded."""
    args = (tiny.model, tiny.example, "genetic", "macs=0.5", tiny.train, tiny.val)
    plain = search_widths(*args, GeneticConfig(**SMALL))
    gated = search_widths(*args, GeneticConfig(**SMALL, predictor="gcn", predictor_min=8, screen_trust=1.0,
                                               predictor_epochs=60))  # fmt: skip
    rounds = gated.history["predictor"]["rounds"]
    assert all(r["probe"] and "online_kendall" in r for r in rounds[1:])
    assert gated.plan.keep == plain.plan.keep and gated.evaluated == plain.evaluated


def test_screened_nsga2_keeps_a_scored_front(tiny) -> None:
    config = NSGA2Config(
        pop_size=8, generations=3, eval_batches=1, full_batches=2, predictor="mlp", predictor_min=8
    )
    result = search_widths(
        tiny.model, tiny.example, "nsga2", ["macs=0.6", "macs=0.4"], tiny.train, tiny.val, config
    )
    assert result.history["predictor"]["trained"]
    assert all(row["value"] < 1e8 for row in result.history["front"])  # no unscored member on the front
    for plan in result.plans.values():
        assert plan.meta["predicted"]["macs"] <= plan.meta["target"]["macs"]


def test_killed_screened_ga_resumes_exactly_without_rescoring(tiny, tmp_path: Path) -> None:
    """The replay reuses every saved score and retraces the killed run: a candidate the killed run
    re-scored on full batches in a later generation is ranked on its cheap score when the replay reaches
    the generation that proposed it, as it was live (before 2026-12-07 the replay could part from it)."""
    config = GeneticConfig(
        **{**SMALL, "generations": 4}, predictor="gcn", predictor_min=8, predictor_epochs=60, seed=2
    )  # seed 2: a run that full-scores, in generation 2, a candidate first ranked on its cheap score
    args = (tiny.model, tiny.example, "genetic", "macs=0.5", tiny.train, tiny.val, config)
    reference = search_widths(*args)
    with pytest.raises(Killed):
        search_widths(*args, out_dir=tmp_path, on_step=_kill_at("generation", 2))
    saved = json.loads((tmp_path / "search_state.json").read_text())["cache"]
    resumed = search_widths(*args, out_dir=tmp_path, resume=True)
    assert resumed.plan.meta["predicted"]["macs"] <= 0.5
    rounds = resumed.history["predictor"]["rounds"]
    assert rounds[:2] == reference.history["predictor"]["rounds"][:2]  # same data -> same screening
    assert resumed.evaluated["cheap"] <= reference.evaluated["cheap"] - len(saved["cheap"]) + len(rounds)
    assert rounds == reference.history["predictor"]["rounds"]
    populations = [[row["widths"] for row in g["population"]] for g in resumed.history["generations"]]
    assert populations == [
        [row["widths"] for row in g["population"]] for g in reference.history["generations"]
    ]
    assert resumed.plan.keep == reference.plan.keep


def test_predictor_on_a_method_that_cannot_screen_is_refused(tiny) -> None:
    with pytest.raises(ConfigError, match="screens the candidates of amc, genetic, n2n, nsga2"):
        search_widths(
            tiny.model,
            tiny.example,
            "greedy",
            "macs=0.5",
            tiny.train,
            tiny.val,
            GreedyConfig(predictor="gcn"),
        )
    with pytest.raises(ConfigError, match="predictor='rf'"):
        GeneticConfig(predictor="rf")


def test_a_saved_predictor_warm_starts_screening_and_another_models_is_refused(tiny, tmp_path: Path) -> None:
    args = (tiny.model, tiny.example, "genetic", "macs=0.5", tiny.train, tiny.val)
    config = GeneticConfig(**SMALL, predictor="gcn", predictor_min=8, predictor_epochs=60)
    search_widths(*args, config, out_dir=tmp_path / "first")
    warm = GeneticConfig(
        **SMALL, predictor="gcn", predictor_min=8, predictor_epochs=60,
        predictor_file=str(tmp_path / "first" / "predictor"),
    )  # fmt: skip
    result = search_widths(*args, warm)
    rounds = result.history["predictor"]["rounds"]
    assert rounds[0]["warm"] and not rounds[0]["fallback"]  # the initial population is screened too
    assert rounds[0]["scored"] == math.ceil(warm.screen_keep * rounds[0]["pool"])
    with pytest.raises(ConfigError, match="holds a gcn predictor"):
        search_widths(*args, GeneticConfig(**SMALL, predictor="mlp", predictor_file=warm.predictor_file))
    with pytest.raises(ConfigError, match="trained for another model or search space"):
        search_widths(*args, GeneticConfig(**SMALL, predictor="gcn", predictor_file=warm.predictor_file,
                                           criterion="l2"))  # fmt: skip
    with pytest.raises(ConfigError, match="also set predictor="):
        GeneticConfig(predictor_file=warm.predictor_file)


def test_screen_explore_scores_a_random_share_of_the_picks(tiny) -> None:
    args = (tiny.model, tiny.example, "genetic", "macs=0.5", tiny.train, tiny.val)
    config = GeneticConfig(
        **SMALL, predictor="mlp", predictor_min=8, screen_keep=0.5, screen_explore=0.5, screen_trust=-1
    )
    rounds = search_widths(*args, config).history["predictor"]["rounds"]
    screened = [r for r in rounds if not r["fallback"]]
    assert screened and all(r["explored"] == min(r["scored"] // 2, r["pool"] - r["scored"]) for r in screened)
    with pytest.raises(ConfigError, match="screen_explore"):
        GeneticConfig(screen_explore=1.0)
