"""Search settings: one dataclass per method over shared fields, plus targets.

A config is plain data (JSON round-trip) so a recipe can hold it and a saved search state can refuse to
resume under different settings. Fields that only decide *where* candidates run (``workers``,
``ray_address``) are left out of that comparison: they do not change results.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from netsculpt.allocate import Target
from netsculpt.errors import ConfigError, PruningError

METRICS = ("loss", "accuracy")
COST_METRICS = ("macs", "params", "latency")
RUN_ONLY_FIELDS = ("workers", "ray_address")
PREDICTOR_KINDS = ("none", "gcn", "mlp")


@dataclass
class SearchConfig:
    """Settings every method shares.

    ``metric`` is what a candidate is judged by on the held-out batches: ``"loss"`` (cross-entropy; it
    ranks candidates more finely than accuracy when accuracy saturates on a few hundred images) or
    ``"accuracy"``. ``eval_batches`` held-out batches give the cheap estimate every candidate gets;
    ``full_batches`` the fuller one the elite and the final picks get. ``adapt_bn_batches`` training
    batches re-estimate BatchNorm statistics of each candidate before it is scored (adaptive BN, as in
    EagleEye): pruning upstream shifts every downstream layer's input statistics, and without it a
    ResNet-20 pruned to half its MACs scored at chance for every criterion while two batches of
    re-estimation brought it to 51-86% (docs/search.md). 0 turns it off.
    ``latency_calibration`` random pruned variants are measured end to end to fit the latency table's
    scale as well as its offset (0: offset only, from the unpruned model).
    """

    VERSION: ClassVar[int] = 1
    method: ClassVar[str] = ""

    criterion: str = "l1"
    metric: str = "loss"
    eval_batches: int = 2
    full_batches: int = 8
    adapt_bn_batches: int = 2
    min_ratio: float = 0.1
    round_to: int | str = 1  # an integer step, "hw" or "auto" (netsculpt.allocate.widths)
    min_channels: int = 1
    tolerance: float = 0.02
    latency_runtime: str = "torch"
    latency_clock: str = "thread"
    latency_calibration: int = 0
    seed: int = 0
    workers: int = 0
    ray_address: str | None = None
    # predictor screening (netsculpt.predictors): "gcn" / "mlp" screen proposals, "none" scores them all
    predictor: str = "none"
    predictor_min: int = 16
    # defaults chosen on resnet20 tuning seeds (docs/search.md, 2026-12-06): 8 of 64 scored per screened
    # generation of 16, the gate reading 3 rounds; a screened generation then costs half a plain one
    screen_keep: float = 0.125
    # once the predictor screens, a generation proposes screen_pool x pop_size candidates (of which
    # screen_keep are scored): a screen can only beat chance by choosing from more than it scores
    screen_pool: int = 4
    # this share of the scored picks is drawn at random from the rest of the proposals, not by the
    # predictor: one trained on a few candidates steered the GA into one basin (docs/search.md)
    screen_explore: float = 0.5
    predictor_epochs: int = 300
    # the screen only rejects candidates while the predictor's Kendall τ on the newest scored proposals
    # is at least this (before that, every proposal is scored and ranked: a probe); -1 screens always
    screen_trust: float = 0.3
    # the gate reads the mean τ of this many latest rounds: one round's 8 picks give a τ that swings by
    # +-0.4 from round to round, and every false close costs a full plain generation
    screen_trust_rounds: int = 3
    predictor_loss: str = "mse"  # or "rank" (+ pairwise rank loss); mse ranked GA proposals best (tuning)
    predictor_features: str = "first"  # or "extended" (netsculpt.predictors.features)
    # a predictor saved by an earlier search of this model and space (DIR/predictor): screens from the
    # first generation, until this run has predictor_min scored candidates of its own to train on
    predictor_file: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the bad field and what it accepts."""
        if self.metric not in METRICS:
            raise ConfigError(f"metric={self.metric!r}: use one of {', '.join(METRICS)}")
        from netsculpt.allocate.widths import check_round_to
        from netsculpt.errors import PruningError
        from netsculpt.measure.latency import RUNTIMES

        try:
            self.round_to = check_round_to(self.round_to)
        except PruningError as exc:
            raise ConfigError(str(exc)) from None
        for name in ("eval_batches", "full_batches", "min_channels"):
            _int(self, name, 1)
        for name in ("adapt_bn_batches", "seed", "workers"):
            _int(self, name, 0)
        if self.full_batches < self.eval_batches:
            raise ConfigError(
                f"full_batches={self.full_batches} must be >= eval_batches={self.eval_batches} "
                "(the fuller evaluation reads at least the batches of the cheap one)"
            )
        _fraction(self, "min_ratio", low=0.0, high=1.0)
        _fraction(self, "tolerance", low=0.0, high=0.5)
        if self.latency_clock not in ("wall", "thread"):
            raise ConfigError(f"latency_clock={self.latency_clock!r}: use 'wall' or 'thread'")
        _int(self, "latency_calibration", 0)
        if self.latency_runtime not in RUNTIMES:
            raise ConfigError(f"latency_runtime={self.latency_runtime!r}: use one of {', '.join(RUNTIMES)}")
        if self.predictor not in PREDICTOR_KINDS:
            raise ConfigError(f"predictor={self.predictor!r}: use one of {', '.join(PREDICTOR_KINDS)}")
        _int(self, "predictor_min", 2)
        _int(self, "predictor_epochs", 1)
        _int(self, "screen_pool", 1)
        _int(self, "screen_trust_rounds", 1)
        if self.predictor_file is not None and self.predictor == "none":
            raise ConfigError(
                f"predictor_file={self.predictor_file!r} warm-starts screening: also set predictor='gcn' "
                "or 'mlp' (the kind the file holds)"
            )
        if not (isinstance(self.screen_explore, int | float) and 0.0 <= self.screen_explore < 1.0):
            raise ConfigError(f"screen_explore must be a fraction in [0, 1), got {self.screen_explore!r}")
        if not (isinstance(self.screen_trust, int | float) and -1.0 <= self.screen_trust <= 1.0):
            raise ConfigError(
                f"screen_trust is a Kendall τ in [-1, 1] (-1: always screen), got {self.screen_trust!r}"
            )
        if self.predictor_loss not in ("mse", "rank"):
            raise ConfigError(f"predictor_loss={self.predictor_loss!r}: use 'mse' or 'rank'")
        if self.predictor_features not in ("first", "extended"):
            raise ConfigError(f"predictor_features={self.predictor_features!r}: use 'first' or 'extended'")
        if not (isinstance(self.screen_keep, int | float) and 0.0 < self.screen_keep <= 1.0):
            raise ConfigError(f"screen_keep must be a fraction in (0, 1], got {self.screen_keep!r}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {
            "version": self.VERSION,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in data.items()},
        }

    def fingerprint(self) -> dict[str, Any]:
        """The fields that change a search's results (compared when resuming)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUN_ONLY_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a search config must be a mapping, got {type(data).__name__}")
        data = dict(data)
        data.pop("version", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} keys {unknown}; valid keys: {', '.join(sorted(known))}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def replace(self, **changes: Any) -> SearchConfig:
        return dataclasses.replace(self, **changes)


@dataclass
class SensitivityConfig(SearchConfig):
    """Prune one group at a time at each of ``ratios`` (fractions of its channels removed)."""

    method: ClassVar[str] = "sensitivity"
    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

    def validate(self) -> None:
        super().validate()
        if not self.ratios or any(not 0.0 < float(r) < 1.0 for r in self.ratios):
            raise ConfigError(f"ratios must be fractions in (0, 1) of channels removed, got {self.ratios!r}")
        self.ratios = tuple(sorted(float(r) for r in self.ratios))


@dataclass
class GreedyConfig(SearchConfig):
    """AutoSlim-style: each step removes ``step`` of one group's original channels (at least one)."""

    method: ClassVar[str] = "greedy"
    step: float = 0.1

    def validate(self) -> None:
        super().validate()
        _fraction(self, "step", low=0.0, high=1.0)
        if self.step <= 0:
            raise ConfigError(f"step must be > 0 (a fraction of a group's channels), got {self.step!r}")


FINALIST_FIELDS = ("finalists", "final_kd_steps", "final_kd_lr")


@dataclass
class FinalistsConfig(SearchConfig):
    """Settings of a single-budget search that can pick its winner after a short distillation
    (netsculpt.search.finalists). ``finalists`` 0: the best full score wins; n: the n best full-scored
    candidates and uniform are distilled for ``final_kd_steps`` batches at ``final_kd_lr`` and the best
    after it wins, since the full score, taken straight after pruning, ranks fine-tuned models poorly."""

    finalists: int = 0
    final_kd_steps: int = 50
    final_kd_lr: float = 0.01

    def validate(self) -> None:
        super().validate()
        _int(self, "finalists", 0)
        _int(self, "final_kd_steps", 1)
        _fraction(self, "final_kd_lr", low=1e-9, high=10.0)

    def fingerprint(self) -> dict[str, Any]:
        """Without the finalist fields while the stage is off, so a search saved before they existed
        still resumes."""
        out = super().fingerprint()
        if not self.finalists:
            for name in FINALIST_FIELDS:
                out.pop(name, None)
        return out


@dataclass
class GeneticConfig(FinalistsConfig):
    """A genetic algorithm over per-group keep ratios under a cost constraint (pymoo GA).

    Every individual gets the cheap estimate; the ``elite`` best of the population are always scored
    with the fuller evaluation, so selection pressure at the top is not driven by noise.
    """

    method: ClassVar[str] = "genetic"
    pop_size: int = 16
    generations: int = 10
    elite: int = 4
    crossover_eta: float = 15.0
    mutation_eta: float = 20.0

    def validate(self) -> None:
        super().validate()
        _int(self, "pop_size", 2)
        _int(self, "generations", 1)
        _int(self, "elite", 0)
        if self.elite > self.pop_size:
            raise ConfigError(f"elite={self.elite} cannot exceed pop_size={self.pop_size}")


@dataclass
class NSGA2Config(SearchConfig):
    """NSGA-II over (metric, cost): a Pareto front of widths from ``min_cost`` up to the full model."""

    method: ClassVar[str] = "nsga2"
    pop_size: int = 24
    generations: int = 10
    min_cost: float = 0.1
    crossover_eta: float = 15.0
    mutation_eta: float = 20.0

    def validate(self) -> None:
        super().validate()
        _int(self, "pop_size", 4)
        _int(self, "generations", 1)
        _fraction(self, "min_cost", low=0.0, high=1.0)


@dataclass
class NAOConfig(FinalistsConfig):
    """NAO: ``rounds`` of train encoder/predictor/decoder -> move the ``top`` embeddings ``step`` along
    the predictor's gradient -> decode -> score (netsculpt.search.nao)."""

    method: ClassVar[str] = "nao"
    init_size: int = 16
    rounds: int = 8
    top: int = 8
    elite: int = 4
    step: float = 0.3
    max_doublings: int = 4
    embed: int = 16
    nao_epochs: int = 400
    trade_off: float = 0.8

    def validate(self) -> None:
        super().validate()
        for name, low in (("init_size", 2), ("rounds", 1), ("top", 1), ("elite", 1), ("embed", 2)):
            _int(self, name, low)
        _int(self, "max_doublings", 0)
        _int(self, "nao_epochs", 1)
        _fraction(self, "trade_off", low=0.0, high=1.0)
        if not (isinstance(self.step, int | float) and self.step > 0):
            raise ConfigError(f"step must be a positive distance in the embedding, got {self.step!r}")


CONFIGS: dict[str, type[SearchConfig]] = {
    c.method: c for c in (SensitivityConfig, GreedyConfig, GeneticConfig, NSGA2Config, NAOConfig)
}


@dataclass(frozen=True)
class CostTarget:
    """A cost the searched model must not exceed, as a fraction of the original: macs, params or latency."""

    metric: str
    value: float
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.metric not in COST_METRICS:
            raise ConfigError(f"search targets are {', '.join(COST_METRICS)}; got {self.metric!r}")
        if not 0.0 < self.value <= 1.0:
            raise ConfigError(f"target {self.metric}={self.value!r} must be a fraction in (0, 1]")

    @property
    def label(self) -> str:
        return f"{self.metric}={self.value:g}"


def parse_targets(target: Any) -> list[CostTarget]:
    """Targets from ``Target(macs=0.5)``, ``"latency=0.6"``, ``{"params": 0.3}`` or a list of those.

    Every target of one search shares its metric: it is the cost the search trades accuracy against.
    """
    items = list(target) if isinstance(target, list | tuple) else [target]
    out = []
    for t in items:
        if isinstance(t, CostTarget):
            out.append(t)
            continue
        try:  # one reader for every spelling: the one ns.prune uses
            t = Target.coerce(t)
        except PruningError as err:
            raise ConfigError(f"search target: {err}") from None
        if t.metric == "channels":
            raise ConfigError("search targets are MACs, params or latency, not a channel count")
        out.append(CostTarget(t.metric, t.value))
    if not out:
        raise ConfigError("give at least one target, e.g. Target(macs=0.5)")
    if len({t.metric for t in out}) > 1:
        raise ConfigError("all targets of one search must use the same cost (macs, params or latency)")
    return sorted(out, key=lambda t: -t.value)


def _int(config: Any, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _fraction(config: Any, name: str, *, low: float, high: float) -> None:
    value = getattr(config, name)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not low <= value < high:
        raise ConfigError(f"{name} must be a number in [{low}, {high}), got {value!r}")
