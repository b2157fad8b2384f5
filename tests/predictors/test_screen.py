"""The screener's trust gate: it rejects candidates only while its online rank check passes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from netsculpt.errors import ConfigError
from netsculpt.predictors import Screener
from netsculpt.search import GeneticConfig
from netsculpt.search.evaluator import Evaluation


def _candidates(space, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    low = space.floors / space.sizes
    return [space.from_ratios(rng.uniform(low, 1.0)) for _ in range(n)]


@dataclass
class FakeScorer:
    """Scores from a function of the widths (a learnable stand-in for a held-out loss), counted."""

    space: object
    loss: Callable[[np.ndarray], float]
    evaluated: dict = field(default_factory=lambda: {"cheap": 0, "full": 0})
    cache: dict = field(default_factory=dict)

    def score(self, counts, level="cheap"):
        out = []
        for c in counts:
            key = self.space.key(c)
            if key not in self.cache:
                self.cache[key] = Evaluation(0.5, self.loss(np.asarray(c)), 10)
                self.evaluated[level] += 1
            out.append(self.cache[key])
        return out

    def value(self, evaluation: Evaluation) -> float:
        return evaluation.loss


@dataclass
class FakeContext:
    space: object
    scorer: FakeScorer
    config: GeneticConfig
    said: list = field(default_factory=list)

    def say(self, message: str) -> None:
        self.said.append(message)


def _damage(space, counts: np.ndarray) -> float:
    return float(-np.log(space.ratios(counts)) @ np.array([3.0, 2.0, 1.0]))


def _screener(tiny_space, loss, **config) -> tuple[Screener, FakeContext]:
    space = tiny_space.space
    settings = {"predictor": "gcn", "predictor_min": 16, "predictor_epochs": 150, "screen_keep": 0.25,
                "screen_trust_rounds": 1, **config}  # fmt: skip
    ctx = FakeContext(space, FakeScorer(space, loss), GeneticConfig(**settings))
    return Screener(ctx, tiny_space.model), ctx


def _generation(screener: Screener, ctx: FakeContext, candidates: list[np.ndarray]) -> list[int]:
    chosen = screener.select(candidates)
    ctx.scorer.score([candidates[i] for i in chosen])
    return chosen


def test_the_gate_opens_after_a_probe_the_predictor_ranks_well(tiny_space) -> None:
    space = tiny_space.space
    screener, ctx = _screener(tiny_space, lambda c: _damage(space, c))
    assert len(_generation(screener, ctx, _candidates(space, 16, 0))) == 16  # nothing to train on yet
    assert not screener.active  # enough data, but the predictor has not shown it ranks new candidates
    assert len(_generation(screener, ctx, _candidates(space, 16, 1))) == 16  # a probe: all scored
    probe = screener.rounds[-1]
    assert probe["probe"] and probe["fallback"] and probe["scored"] == 16
    assert screener.active and screener.rounds[-1]["online_kendall"] >= 0.3  # checked once scored
    assert any("below screen_trust=0.3" in m for m in ctx.said)
    assert len(_generation(screener, ctx, _candidates(space, 32, 2))) == 8  # screening: 25% of the pool
    assert not screener.rounds[-1]["fallback"]
    assert screener.summary()["probes"] == 1


def test_the_gate_closes_when_the_picks_rank_wrong(tiny_space) -> None:
    space = tiny_space.space
    sign = [1.0]
    screener, ctx = _screener(tiny_space, lambda c: sign[0] * _damage(space, c))
    for seed in range(2):
        _generation(screener, ctx, _candidates(space, 16, seed))
    assert screener.active
    sign[0] = -1.0  # the score turns against everything learnt so far: the picks rank backwards
    _generation(screener, ctx, _candidates(space, 32, 2))
    assert not screener.active and screener.rounds[-1]["picked_kendall"] < 0.3
    assert any("of its last picks is below screen_trust" in m for m in ctx.said)
    assert len(_generation(screener, ctx, _candidates(space, 16, 3))) == 16  # a probe again


def test_a_gate_over_several_rounds_reads_their_mean_tau(tiny_space) -> None:
    space = tiny_space.space
    sign = [1.0]
    screener, ctx = _screener(
        tiny_space, lambda c: sign[0] * _damage(space, c), screen_trust_rounds=3, screen_trust=0.0
    )
    for seed in range(2):
        _generation(screener, ctx, _candidates(space, 16, seed))
    _generation(screener, ctx, _candidates(space, 32, 2))
    assert screener.active  # the probe's and the screen's τ are both high
    sign[0] = -1.0  # one round ranked backwards
    _generation(screener, ctx, _candidates(space, 32, 3))
    last = screener.last_round()  # checks the round against the scores it got
    taus = [r["online_kendall"] for r in screener.rounds if "online_kendall" in r]
    assert last["picked_kendall"] < 0 and last["gate_kendall"] == pytest.approx(np.mean(taus[-3:]))
    # a one-round gate would close here; three rounds average the bad one out
    assert np.mean(taus[-3:]) > 0.0 > taus[-1] and screener.active


def test_single_picks_are_pooled_into_one_tau_per_min_pairs(tiny_space) -> None:
    """AMC scores one rollout of each pool: a τ of one pair is undefined, so the picks of consecutive
    rounds are pooled until MIN_PAIRS pairs give one, and only then does the gate read it."""
    from netsculpt.predictors.screen import MIN_PAIRS

    space = tiny_space.space
    screener, ctx = _screener(tiny_space, lambda c: _damage(space, c), screen_trust=-1, screen_keep=0.25)
    _generation(screener, ctx, _candidates(space, 16, 0))  # the data to train on
    for seed in range(1, 2 * MIN_PAIRS + 1):
        _generation(screener, ctx, _candidates(space, 4, seed))
        assert screener.last_round()["scored"] == 1  # (a candidate seen before would come free)
    screened = screener.rounds[1:]
    assert [("online_kendall" in r) for r in screened] == [
        (i + 1) % MIN_PAIRS == 0 for i in range(2 * MIN_PAIRS)
    ]
    assert len(screener.taus) == 2


def test_an_unlearnable_score_is_never_screened(tiny_space) -> None:
    space = tiny_space.space
    noise = np.random.default_rng(0)
    screener, ctx = _screener(tiny_space, lambda c: float(noise.normal()), screen_trust=0.5)
    for seed in range(4):
        assert len(_generation(screener, ctx, _candidates(space, 16, seed))) == 16
    assert not screener.active and screener.summary()["probes"] == 3


def test_trust_minus_one_screens_without_a_probe(tiny_space) -> None:
    space = tiny_space.space
    screener, ctx = _screener(tiny_space, lambda c: _damage(space, c), screen_trust=-1)
    _generation(screener, ctx, _candidates(space, 16, 0))
    assert screener.active and len(_generation(screener, ctx, _candidates(space, 32, 1))) == 8


@pytest.mark.parametrize(
    ("field_", "value", "match"),
    [("screen_trust", 1.5, "Kendall τ in"), ("predictor_loss", "l1", "'mse' or 'rank'"),
     ("screen_trust_rounds", 0, "screen_trust_rounds"),
     ("predictor_features", "all", "'first' or 'extended'")],
)  # fmt: skip
def test_bad_gate_settings_are_refused(field_: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GeneticConfig(**{field_: value})
