"""``search_widths``: choose how many channels each group keeps by scoring pruned candidates.

One call sets up what every method shares — the traced graph, the criterion's channel scores (which
channels a width keeps), the cost model, the held-out batches, the executor and the resumable state —
runs the method from the :data:`SEARCHERS` registry, and returns plans as plain data.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from netsculpt.errors import ConfigError, DataError, PruningError
from netsculpt.fileio import write_json
from netsculpt.graph import ChannelGraph, trace
from netsculpt.graph.channel_graph import ignored_module_names
from netsculpt.graph.reparam import refuse_hooked, warn_reparams
from netsculpt.progress import info
from netsculpt.registry import Registry
from netsculpt.search import amc, genetic, greedy, n2n, nao, nsga2, sensitivity
from netsculpt.search.config import CONFIGS, CostTarget, SearchConfig, parse_targets
from netsculpt.search.evaluator import EvalTask, sample_inputs, take_batches, tensor_leaves
from netsculpt.search.executors import Executor, make_executor
from netsculpt.search.scoring import MethodOutput, Scorer, SearchContext
from netsculpt.search.space import SearchSpace
from netsculpt.search.state import SearchState, weights_fingerprint
from netsculpt.surgery import PrunePlan

SEARCHERS: Registry[Callable[[SearchContext], MethodOutput]] = Registry("search method")
SEARCHERS.register("sensitivity", sensitivity.run)
SEARCHERS.register("greedy", greedy.run)
SEARCHERS.register("genetic", genetic.run)
SEARCHERS.register("nsga2", nsga2.run)
SEARCHERS.register("amc", amc.run)
CONFIGS.setdefault("amc", amc.AMCConfig)
SEARCHERS.register("nao", nao.run)
SEARCHERS.register("n2n", n2n.run)
CONFIGS.setdefault("n2n", n2n.N2NConfig)
LATENCY_TABLE = "latency_table.json"


def list_searchers() -> list[str]:
    return SEARCHERS.names()


@dataclass
class SearchResult:
    """The plan per target (``plan`` is the first target's), the method's JSON-ready history, and what
    the search cost: candidates scored per level and wall time."""

    method: str
    plan: PrunePlan
    plans: dict[str, PrunePlan]
    history: dict[str, Any]
    evaluated: dict[str, int]
    seconds: float
    files: dict[str, Any] = field(default_factory=dict)

    @property
    def widths(self) -> dict[str, int]:
        return dict(self.plan.meta.get("widths", {}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "plans": {label: p.to_dict() for label, p in self.plans.items()},
            "evaluated": self.evaluated,
            "seconds": self.seconds,
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], first: str) -> SearchResult:
        """A result saved by :meth:`to_dict` (plus ``files``), its plan the ``first`` target's."""
        plans = {label: PrunePlan.from_dict(p) for label, p in data["plans"].items()}
        return cls(data["method"], plans[first], plans, data["history"], dict(data["evaluated"]),
                   float(data["seconds"]), dict(data.get("files", {})))  # fmt: skip

    def save(self, out_dir: str | Path) -> list[Path]:
        """``plan.json`` (first target), ``plans/<target>.json``, ``search.json`` (everything) and the
        method's own parts (``front.json``, ``trajectory.json``, ...), each written atomically."""
        out = Path(out_dir)
        paths = [self.plan.save(out / "plan.json"), write_json(out / "search.json", self.to_dict())]
        if len(self.plans) > 1:
            paths += [
                p.save(out / "plans" / f"{label.replace('=', '_')}.json") for label, p in self.plans.items()
            ]
        paths += [write_json(out / f"{name}.json", data) for name, data in self.files.items()]
        return paths


def search_widths(
    model: nn.Module,
    example_inputs: Any,
    method: str = "genetic",
    target: Any = "macs=0.5",
    train_loader: Iterable[Any] | None = None,
    val_loader: Iterable[Any] | None = None,
    config: SearchConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    graph: ChannelGraph | None = None,
    scores: dict[str, np.ndarray] | None = None,
    latency_model: Any = None,
    executor: Executor | None = None,
    ignored: Iterable[str | nn.Module | type] = (),
    allow_inexact: bool = False,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    task: Any = None,
) -> SearchResult:
    """Search per-group widths for ``model`` that meet ``target`` (``Target(macs=0.5)``, ``"latency=0.6"``,
    or a list of targets sharing one cost) with ``method`` (see :func:`list_searchers`).

    Candidates are scored on the first batches of ``val_loader``: a held-out split the model was not
    trained on. ``train_loader`` feeds data-driven criteria and adaptive BatchNorm. With ``out_dir`` the
    state is saved after every step and ``resume=True`` continues a killed search; plots and JSON are
    written there at the end. ``on_step(progress)`` is called after each saved step.

    ``task`` (``"detection"``, ``"segmentation"`` or a :class:`netsculpt.tasks.Task`): candidates are
    scored by its metric (mAP@[.5:.95], mIoU; ``1 - metric`` as the loss), data-driven criteria run the
    model its way (taylor / fisher differentiate its loss), and BatchNorm re-estimation adapts only the
    norm layers' statistics. The loaders must batch with the task's ``collate``.

    ``ignored`` keeps modules whole, read as ``ns.prune`` reads it: names, globs (``"layer4.*"``),
    classes (``nn.Linear``) or module objects.
    """
    started = time.perf_counter()
    config = _config(method, config)
    targets = parse_targets(target)  # largest first: the order methods walk them in
    first = parse_targets(target[0] if isinstance(target, list | tuple) and target else target)[0].label
    if val_loader is None:
        raise DataError(
            "search_widths needs held-out batches: pass val_loader (data the model was not trained on)"
        )
    # names, globs, classes or modules -> names, once (candidates are copies, without the module objects)
    ignored = ignored_module_names(model, ignored)
    dense = dense_task(task)
    refuse_hooked(model)  # every candidate is a pruned copy: fail now, not at the first candidate
    warn_reparams(model, ignored)
    graph = graph or trace(model, example_inputs, ignored=ignored, allow_inexact=allow_inexact)
    scores = scores if scores is not None else _scores(model, graph, config, train_loader, task)
    out = Path(out_dir) if out_dir is not None else None
    if targets[0].metric == "latency" and latency_model is None:
        latency_model = _latency_model(model, example_inputs, config, out, resume)
    space = SearchSpace(
        model,
        example_inputs,
        graph,
        scores,
        min_ratio=config.min_ratio,
        round_to=config.round_to,
        min_channels=config.min_channels,
        latency=latency_model,
    )
    bn_batches = []
    if config.adapt_bn_batches:
        if train_loader is None:
            raise DataError(
                "scoring re-estimates BatchNorm statistics on training batches (adapt_bn_batches="
                f"{config.adapt_bn_batches}): pass train_loader, or set adapt_bn_batches=0"
            )
        bn_batches = sample_inputs(train_loader, config.adapt_bn_batches, config.seed)
    batches = take_batches(val_loader, config.full_batches, "held-out")
    fingerprint = {
        "method": method,
        "config": config.fingerprint(),
        "targets": [t.label for t in targets],
        "groups": [[g, int(s)] for g, s in zip(space.ids, space.sizes)],
        "weights": weights_fingerprint(model),
        "scores": _digest(scores[g] for g in space.ids),
        "batches": _digest(t.cpu().numpy() for t in tensor_leaves([batches, bn_batches])),
        **({"task": dense.name} if dense is not None else {}),
    }
    state = SearchState(out, fingerprint, resume)
    if state.finished is not None:  # the same search, already finished: nothing left to score
        info(f"search: {out} holds this search, finished; returning its saved result (nothing re-scored)")
        done = SearchResult.from_dict(state.finished, first)
        done.evaluated = {level: 0 for level in done.evaluated}  # what this call scored
        return done
    executor = executor or make_executor(config.workers, config.ray_address)
    scorer = Scorer(space, executor, config, state)
    ctx = SearchContext(space, scorer, targets, config, state, _saver(on_step, latency_model, out))
    ctx.screener = _screener(ctx, model, method)
    ctx.eval_task = EvalTask(model, example_inputs, batches, bn_batches, ignored, allow_inexact, graph, dense)
    ctx.train_loader = train_loader
    executor.start(ctx.eval_task, graph)
    try:
        output = SEARCHERS.get(method)(ctx)
        if ctx.screener is not None:
            output.history["predictor"] = ctx.screener.summary()
        plans = {
            t.label: _plan(ctx, t, output.picks[t.label], method, output.meta.get(t.label, {}))
            for t in targets
        }
    finally:
        executor.close()
    result = SearchResult(
        method,
        plans[first],  # the first target as given, which plan.json and the CLI's model/ are for
        plans,
        output.history,
        dict(scorer.evaluated),
        time.perf_counter() - started,
        output.files,
    )
    if out is not None:
        from netsculpt.search.plots import plot_history

        result.save(out)
        if ctx.screener is not None and ctx.screener.predictor.trained_on:
            ctx.screener.predictor.save(out / "predictor")
        plot_history(method, output.history, out, [t.value for t in targets])
        if latency_model is not None:
            latency_model.save(out / LATENCY_TABLE)
        state.finish({**result.to_dict(), "files": result.files})  # last: every file above is written
    return result


def _config(method: str, config: SearchConfig | None) -> SearchConfig:
    SEARCHERS.get(method)  # unknown names fail here, listing the registered ones
    expected = CONFIGS.get(method, SearchConfig)
    if config is None:
        return expected()
    if not isinstance(config, expected):
        raise ConfigError(f"method {method!r} takes a {expected.__name__}, got {type(config).__name__}")
    config.validate()
    return config


def _screener(ctx: SearchContext, model: nn.Module, method: str) -> Any:
    """The online predictor that screens proposals (``config.predictor``), or None."""
    if ctx.config.predictor == "none":
        return None
    from netsculpt.predictors import SCREENED_METHODS, Screener

    if method not in SCREENED_METHODS:
        raise ConfigError(
            f"predictor={ctx.config.predictor!r} screens the candidates of "
            f"{', '.join(sorted(SCREENED_METHODS))}; "
            f"{method!r} does not propose candidates in batches to screen: use predictor='none'"
        )
    return Screener(ctx, model)


def dense_task(task: Any) -> Any:
    """The task when it is not classification (classification keeps its own scoring path)."""
    if task is None:
        return None
    from netsculpt.tasks import get_task

    resolved = get_task(task)
    return None if resolved.name == "classification" else resolved


def _scores(
    model: nn.Module, graph: ChannelGraph, config: SearchConfig, data: Iterable[Any] | None, task: Any = None
) -> dict[str, np.ndarray]:
    from netsculpt.importance import get_criterion

    criterion = get_criterion(config.criterion)
    if task is not None:
        from netsculpt.prune import give_task

        give_task(criterion, config.criterion, task)
    if criterion.needs - {"weights"} and data is None:
        raise PruningError(f"criterion {config.criterion!r} learns from data: pass train_loader")
    return criterion.score(model, graph, data)


def _latency_model(
    model: nn.Module, example_inputs: Any, config: SearchConfig, out: Path | None, resume: bool
):
    """The latency lookup table: reloaded from ``out`` on resume so the replay sees the same costs."""
    from netsculpt.measure.latency_model import LatencyModel
    from netsculpt.search.latency import calibrate_latency_model

    path = out / LATENCY_TABLE if out is not None else None
    if resume and path is not None and path.exists():
        return LatencyModel.load(path, model, example_inputs)
    latency = LatencyModel(model, example_inputs, runtime=config.latency_runtime, clock=config.latency_clock)
    if config.latency_calibration:
        calibrate_latency_model(
            latency,
            model,
            example_inputs,
            variants=config.latency_calibration,
            seed=config.seed,
            round_to=config.round_to,
        )
    return latency


def _saver(on_step: Callable | None, latency_model: Any, out: Path | None) -> Callable[[dict], None]:
    def step(progress: dict[str, Any]) -> None:
        if latency_model is not None and out is not None:  # costs seen so far, for an exact replay
            latency_model.save(out / LATENCY_TABLE)
        if on_step is not None:
            on_step(progress)

    return step


def _plan(
    ctx: SearchContext, target: CostTarget, counts: np.ndarray, method: str, extra: dict[str, Any]
) -> PrunePlan:
    if extra:  # the method measured its pick itself (n2n: widths and removed blocks, after distillation)
        meta = {"search": method, "criterion": ctx.config.criterion, "target": {target.metric: target.value},
                "widths": ctx.space.widths(counts), **extra}  # fmt: skip
        return ctx.space.plan(counts, meta)
    described = ctx.describe(counts, "full")
    meta = {
        "search": method,
        "criterion": ctx.config.criterion,
        "target": {target.metric: target.value},
        "predicted": described["cost"],
        "estimate": {k: described[k] for k in ("accuracy", "loss", "samples")},
        "widths": described["widths"],
    }
    return ctx.space.plan(counts, meta)


def _digest(arrays: Iterable[Any]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def apply_search_plan(model: nn.Module, plan: PrunePlan, example_inputs: Any, **options: Any) -> nn.Module:
    """The searched model: ``model`` cut to the plan's widths, then the residual blocks the plan's
    ``meta["remove_blocks"]`` names removed (n2n plans; other methods' plans are widths only).
    ``options`` go to :func:`netsculpt.prune.apply_plan`."""
    from netsculpt.prune import apply_plan

    small = apply_plan(model, plan, example_inputs, **options)
    blocks = plan.meta.get("remove_blocks") or []
    if blocks:
        from netsculpt.depth import remove_blocks

        small = remove_blocks(small, [dict(b) for b in blocks], inplace=True)
    return small


def finetune_pruned(
    pruned: nn.Module,
    teacher: nn.Module | None,
    train_loader: Any,
    test_loader: Any,
    config: Any,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    task: Any = None,
) -> Any:
    """Fine-tune a searched model in place: by knowledge distillation from ``teacher`` (the unpruned
    model) with :func:`netsculpt.train.distill`, or plain training when ``teacher`` is None. ``task``:
    a dense :class:`netsculpt.tasks.Task` (its loss, metric and distillation), None for classification."""
    from netsculpt.train import train

    if teacher is None:
        return train(pruned, train_loader, test_loader, config, out_dir=out_dir, resume=resume, task=task)
    from netsculpt.train import distill

    return distill(pruned, teacher, train_loader, test_loader, config, out_dir=out_dir, resume=resume,
                   task=task)  # fmt: skip
