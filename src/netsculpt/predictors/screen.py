"""Screen a search's new candidates with a predictor trained online on the ones already scored.

Every time the genetic search or NSGA-II proposes candidates, the predictor is retrained on every
candidate this run has scored (cheap score, the level every scored candidate has) and only the
``screen_keep`` most promising of the new ones are scored; the rest get no score and die in survival.
Until ``predictor_min`` candidates are scored there is nothing to learn from: every candidate is
scored (plain scoring), and the search says so — unless ``predictor_file`` names a predictor an earlier
search of the same model and space saved (warm start), which screens until then. The training set
is the candidates *this run* scored, in order (not the score cache, which after a resume already
holds later candidates), so a resumed search retrains the same predictors and replays the same screening.

Trust gate: a predictor is only allowed to reject candidates once it has shown, online, that it ranks this
run's *new* proposals (the τ of the latest round, or the mean τ of the latest ``screen_trust_rounds``).
With enough data but no trust yet, a generation is a probe: the predictor ranks every proposal, all of
them are scored (plain scoring), and the Kendall τ between its ranking and the scores they got decides;
screening starts when that τ reaches ``screen_trust`` and stops again when the τ of a screen's picks falls
below it. On resnet20 a GCN trained on the first 16-40 candidates ranked the GA's offspring at τ 0.15-0.24
and rejected each generation's best (docs/search.md): a screen that weak costs more than it saves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from netsculpt.errors import ConfigError
from netsculpt.predictors.features import GraphFeatures
from netsculpt.predictors.predictor import Predictor, rank_quality

SCREENED_METHODS = {"genetic", "nsga2", "amc", "n2n"}
MIN_PAIRS = 4  # (prediction, score) pairs one online τ is measured on
REFIT_NEW = 8  # new candidates that always trigger retraining the predictor


class Screener:
    """Chooses which proposed candidates get scored; keeps a record of what it did and how well."""

    def __init__(self, ctx: Any, model: Any) -> None:
        config = ctx.config
        self.ctx, self.kind = ctx, config.predictor
        self.min_data, self.keep_fraction, self.epochs = (
            config.predictor_min,
            config.screen_keep,
            config.predictor_epochs,
        )
        self.explore, self.trust = config.screen_explore, config.screen_trust
        self.trust_rounds = config.screen_trust_rounds
        self.taus: list[float] = []  # online τ of every checked round, oldest first
        self.unmeasured: tuple[list[float], list[float]] = ([], [])  # (predicted, actual) not yet in a τ
        self.features = GraphFeatures(ctx.space, model, extended=config.predictor_features == "extended")
        self.fingerprint = {
            **self.features.fingerprint(model),
            "metric": config.metric,
            "criterion": config.criterion,
        }
        self.predictor = Predictor(
            self.kind, self.features, self.fingerprint, seed=config.seed, loss=config.predictor_loss
        )
        self.warm: Predictor | None = None
        if config.predictor_file is not None:
            self.warm = Predictor.load(config.predictor_file, self.features, self.fingerprint)
            if self.warm.kind != self.kind:
                raise ConfigError(
                    f"predictor_file {config.predictor_file} holds a {self.warm.kind} predictor, but "
                    f"predictor={self.kind!r}: use predictor={self.warm.kind!r}"
                )
        self.seen: dict[str, np.ndarray] = {}  # scored by this run, in order
        # metric values a searcher scored its own way (N2N distils each student): used before the scorer
        self.values: dict[str, float] = {}
        # the last round's predictions for the candidates it scored, checked once they have scores
        self.pending: tuple[int, list[np.ndarray], np.ndarray] | None = None
        self.rounds: list[dict[str, Any]] = []
        self.fallback_said = False
        self.trusted = self.warm is not None or self.trust <= -1.0  # -1: screen without a probe
        self.probe_said = False

    @property
    def active(self) -> bool:
        """Whether the next proposals will be screened: enough data of this run (or a warm start) and
        a predictor whose last online rank check passed ``screen_trust``."""
        self._check_last()  # the last round's scores are in: the gate may have opened or closed
        warm = self.warm is not None and len(self.seen) < self.min_data
        return warm or (len(self.seen) >= self.min_data and self.trusted)

    def record(self, counts: np.ndarray, value: float | None = None) -> None:
        """A candidate this run scored without proposing it here (AMC's warm-up, a resumed run's episodes):
        ``value`` is its metric (lower is better) when it was scored outside the cheap scorer, as N2N's
        distilled students are; None when the cheap scorer has it."""
        key = self.ctx.space.key(counts)
        self.seen.setdefault(key, np.asarray(counts, dtype=np.int64))
        if value is not None:
            self.values[key] = float(value)

    def _values(self, counts: Sequence[np.ndarray]) -> list[float]:
        keys = [self.ctx.space.key(c) for c in counts]
        if all(k in self.values for k in keys):
            return [self.values[k] for k in keys]
        evaluations = self.ctx.scorer.score(list(counts), "cheap")  # all cached: they were scored
        return [self.ctx.scorer.value(e) for e in evaluations]

    def data(self) -> tuple[list[np.ndarray], np.ndarray]:
        counts = list(self.seen.values())
        return counts, np.array(self._values(counts))

    def select(self, candidates: Sequence[np.ndarray], costs: Sequence[float] | None = None) -> list[int]:
        """Indices of ``candidates`` to score: the ones seen before (free) plus the best-predicted
        ``screen_keep`` of the new ones (by predicted metric; with ``costs``, by Pareto rank of
        (predicted metric, cost) first)."""
        space = self.ctx.space
        keys = [space.key(c) for c in candidates]
        free = [i for i, k in enumerate(keys) if k in self.seen]
        new = [i for i, k in enumerate(keys) if k not in self.seen and k not in keys[:i]]
        self._check_last()
        warm = self.warm is not None and len(self.seen) < self.min_data
        if (len(self.seen) < self.min_data and not warm) or not new:
            if new and not self.fallback_said:
                self.ctx.say(
                    f"predictor {self.kind}: {len(self.seen)} candidates scored so far, fewer than "
                    f"predictor_min={self.min_data} to train on: scoring every candidate (plain scoring)"
                )
                self.fallback_said = True
            chosen = free + new
            self.rounds.append(
                {"pool": len(new), "scored": len(new), "trained_on": len(self.seen), "fallback": True}
            )
        else:
            if warm:  # the loaded predictor screens until this run has data of its own
                predictor, trained_on = self.warm, self.warm.trained_on
            else:
                predictor, trained_on = self._fitted()
            predicted = predictor.predict([candidates[i] for i in new])
            if not warm and not self.trusted:
                return self._probe(candidates, keys, free, new, predicted, trained_on)
            order = _order(predicted, None if costs is None else np.asarray([costs[i] for i in new]))
            n_keep = max(1, math.ceil(self.keep_fraction * len(new)))
            n_explore = min(int(self.explore * n_keep), len(new) - n_keep)
            top, rest = order[: n_keep - n_explore], order[n_keep - n_explore :]
            rng = np.random.default_rng([self.ctx.config.seed, len(self.rounds)])  # replays on resume
            sel = np.concatenate([top, rng.choice(rest, size=n_explore, replace=False)]).astype(np.int64)
            picked = [new[j] for j in sel]
            self.pending = (len(self.rounds), [candidates[i] for i in picked], predicted[sel])
            chosen = free + picked
            self.rounds.append(
                {
                    "pool": len(new),
                    "scored": n_keep,
                    "explored": n_explore,
                    "trained_on": trained_on,
                    "fallback": False,
                    "warm": warm,
                }
            )
            if warm and not self.rounds[:-1]:
                self.ctx.say(
                    f"predictor {self.kind}: screening with {self.ctx.config.predictor_file} (trained on "
                    f"{trained_on} candidates) until this run has scored predictor_min={self.min_data}"
                )
            if self.fallback_said:
                self.ctx.say(
                    f"predictor {self.kind}: trained on {trained_on} candidates; screening from now on"
                )
                self.fallback_said = False
        for i in chosen:
            self.seen.setdefault(keys[i], np.asarray(candidates[i]))
        return sorted(set(chosen))

    def _fitted(self) -> tuple[Predictor, int]:
        """The predictor, retrained from scratch once the data has grown by REFIT_NEW candidates (or by a
        tenth, if less) since its last training: a GA generation always adds that many, but an RL step
        adds one, and retraining the GCN after every AMC episode doubled the search's wall time."""
        n = len(self.seen)
        if self.predictor.trained_on == 0 or n - self.predictor.trained_on >= min(REFIT_NEW, max(1, n // 10)):
            counts, targets = self.data()
            self.predictor.fit(counts, targets, self.epochs)
        return self.predictor, self.predictor.trained_on

    def _probe(
        self,
        candidates: Sequence[np.ndarray],
        keys: list[str],
        free: list[int],
        new: list[int],
        predicted: np.ndarray,
        trained_on: int,
    ) -> list[int]:
        """Score every new candidate, keeping the predictor's view of them for the trust check."""
        self.pending = (len(self.rounds), [candidates[i] for i in new], predicted)
        self.fallback_said = False  # the probe messages take over from the too-few-candidates one
        self.rounds.append(
            {"pool": len(new), "scored": len(new), "trained_on": trained_on, "fallback": True, "probe": True}
        )
        if not self.probe_said:
            last = next((r["online_kendall"] for r in reversed(self.rounds) if "online_kendall" in r), None)
            so_far = "not measured yet" if last is None else f"{last:.3f}"
            self.ctx.say(
                f"predictor {self.kind}: trained on {trained_on} candidates; its online Kendall τ on new "
                f"candidates ({so_far}) is below screen_trust={self.trust}: scoring every candidate "
                "while it ranks them (plain scoring)"
            )
            self.probe_said = True
        for i in free + new:
            self.seen.setdefault(keys[i], np.asarray(candidates[i]))
        return sorted(set(free + new))

    def _check_last(self) -> None:
        """Rank quality of the last round's predictions against the scores they then got; the trust
        gate follows its Kendall τ (a constant score list, τ undefined, counts as 0)."""
        if self.pending is None:
            return
        index, counts, predicted = self.pending
        self.pending = None
        actual = self._values(counts)
        quality = rank_quality(predicted, actual)
        round_ = self.rounds[index]
        prefix = "online" if round_.get("probe") else "picked"
        round_.update({f"{prefix}_{k}": v for k, v in quality.items() if k != "n"})
        # rounds of fewer than MIN_PAIRS picks (AMC scores one rollout of its pool per step) are pooled
        # until there are enough pairs for a τ; the gate only moves when one is measured
        self.unmeasured[0].extend(float(p) for p in predicted)
        self.unmeasured[1].extend(actual)
        if len(self.unmeasured[0]) < MIN_PAIRS:
            return
        pooled = rank_quality(*self.unmeasured)
        self.unmeasured = ([], [])
        tau = pooled["kendall"] if pooled["kendall"] is not None else 0.0
        round_["online_kendall"] = tau
        self.taus.append(tau)
        tau = float(np.mean(self.taus[-self.trust_rounds :]))  # what the gate reads
        if self.trust_rounds > 1:
            round_["gate_kendall"] = tau
        was = self.trusted
        self.trusted = self.trust <= -1.0 or tau >= self.trust
        if was and not self.trusted:
            what = "its last picks" if self.trust_rounds == 1 else f"its last {self.trust_rounds} rounds"
            self.ctx.say(
                f"predictor {self.kind}: Kendall τ {tau:.3f} of {what} is below "
                f"screen_trust={self.trust}: scoring every candidate until it ranks them again"
            )
            self.probe_said = True
        elif self.trusted and not was:
            self.ctx.say(f"predictor {self.kind}: online Kendall τ {tau:.3f} >= screen_trust: screening")
            self.probe_said = False

    def last_round(self) -> dict[str, Any] | None:
        """The latest round, its rank check included (call once its candidates are scored)."""
        self._check_last()
        return dict(self.rounds[-1]) if self.rounds else None

    def summary(self) -> dict[str, Any]:
        self._check_last()
        return {
            "kind": self.kind,
            "predictor_min": self.min_data,
            "screen_keep": self.keep_fraction,
            "proposed": sum(r["pool"] for r in self.rounds),
            "scored": sum(r["scored"] for r in self.rounds),
            "screen_trust": self.trust,
            "probes": sum(1 for r in self.rounds if r.get("probe")),
            "rounds": self.rounds,
            "trained": any(not r["fallback"] for r in self.rounds),
        }


def _order(predicted: np.ndarray, costs: np.ndarray | None) -> np.ndarray:
    if costs is None:
        return np.argsort(predicted, kind="stable")
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    fronts = NonDominatedSorting().do(np.column_stack([predicted, costs]))
    rank = np.empty(len(predicted), dtype=np.int64)
    for r, front in enumerate(fronts):
        rank[front] = r
    return np.lexsort((predicted, rank))
