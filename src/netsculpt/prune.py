"""The pruning entry points: trace -> score -> allocate -> surgery, in one call."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from netsculpt import checks
from netsculpt.allocate import Target, check_ratio, target_plan, uniform_plan, widths_plan
from netsculpt.allocate.per_layer import expand_ignored, ratios_plan
from netsculpt.allocate.targets import STRATEGIES
from netsculpt.allocate.widths import DEFAULT_ROUND_TO, check_round_to
from netsculpt.edits.inputs import layout_of
from netsculpt.errors import PruningError
from netsculpt.graph import ChannelGraph, trace
from netsculpt.graph.channel_graph import ignored_module_names
from netsculpt.graph.compiled import refuse_compiled
from netsculpt.graph.reparam import refuse_hooked, warn_reparams
from netsculpt.graph.snapshot import ModuleSnapshot
from netsculpt.graph.tracing import as_tuple, training_branches_mode
from netsculpt.importance import get_criterion
from netsculpt.modes import eval_mode
from netsculpt.spec import SPEC_ATTR, append_plan, ensure_base, model_spec
from netsculpt.surgery import PrunePlan, apply_plan_
from netsculpt.surgery.match import check_plan_fits, stamp


def plan_pruning(
    model: nn.Module,
    example_inputs: Any,
    *,
    criterion: str = "l1",
    ratio: float | None = None,
    target: Target | str | dict[str, float] | None = None,
    widths: dict[str, int] | None = None,
    ratios: dict[Any, float] | None = None,
    strategy: str = "global",
    data: Iterable[Any] | None = None,
    calib_batches: int | None = None,
    ignored: Iterable[str | nn.Module] = (),
    allow_inexact: bool = False,
    round_to: int | str = DEFAULT_ROUND_TO,
    min_channels: int = 1,
    graph: ChannelGraph | None = None,
    task: Any = None,
    runtime: str = "torch",
    threads: int = 1,
    latency: Any = None,
) -> tuple[PrunePlan, ChannelGraph]:
    """Decide what to remove without touching ``model``: returns the plan and the traced graph.

    Give one of ``ratio`` (every group loses that fraction; default 0.5), ``target`` (``Target(macs=0.5)``,
    ``params=``, ``channels=``, ``latency=``, or the same as ``"macs=0.5"`` / ``{"macs": 0.5}``; met with
    the ``strategy`` "global" ranking or "uniform" ratio), or ``widths``
    (exact channel counts per group / producing module). ``ratios`` gives layers their own ratio
    (``{"layer4.*": 0.7, nn.Linear: 0.0}``: keys are module names, globs, classes, modules or group
    ids; later keys override earlier ones); the other groups lose ``ratio`` (default 0 with
    ``ratios``). ``ignored`` takes names, globs (``"layer4.*"``), classes (``nn.Linear``) or modules.
    ``task`` (``"detection"``, ``"segmentation"`` or a
    :class:`netsculpt.tasks.Task`) tells data-driven criteria how to run the model on ``data`` and which
    loss the gradient criteria (taylor, fisher) differentiate.

    ``round_to`` rounds kept counts so the result is fast, not only small: ``"hw"`` (default; multiples
    of 8, or 16 in groups of 64+ channels, re-solved to the target), ``"auto"`` (measured on ``runtime``
    with ``threads`` threads, or on the given ``latency`` table; see :mod:`netsculpt.allocate.auto`) or
    an integer (``1`` keeps exact counts). Latency targets are measured on the same ``runtime``.
    """
    options = {k: v for k, v in locals().items() if k not in ("model", "example_inputs")}
    return scaled_plan(model, example_inputs, 1.0, **options)


def plan_defaults() -> dict[str, Any]:
    """``plan_pruning``'s options and their defaults (what :func:`scaled_plan` needs spelled out)."""
    params = inspect.signature(plan_pruning).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def scaled_plan(
    model: nn.Module,
    example_inputs: Any,
    scale: float,
    *,
    criterion: str,
    ratio: float | None,
    target: Target | str | dict[str, float] | None,
    widths: dict[str, int] | None,
    ratios: dict[Any, float] | None,
    strategy: str,
    data: Iterable[Any] | None,
    calib_batches: int | None,
    ignored: Iterable[str | nn.Module],
    allow_inexact: bool,
    round_to: int | str,
    min_channels: int,
    graph: ChannelGraph | None,
    task: Any,
    runtime: str,
    threads: int,
    latency: Any,
) -> tuple[PrunePlan, ChannelGraph]:
    """``plan_pruning`` for a model whose cost is ``scale`` of an original it was pruned from: a ``target``
    and the values it reports are fractions of that original (``prune_iteratively``'s rounds)."""
    round_to = check_round_to(round_to)
    _check_options(model, widths, strategy, calib_batches, allow_inexact, min_channels, graph, threads)
    if sum(x is not None for x in (ratio, target, widths)) > 1:
        raise PruningError("give only one of ratio=, target=, widths=")
    check_ratios(ratios, target, widths, round_to)
    if ratio is None and target is None and widths is None:
        ratio = 0.0 if ratios is not None else 0.5
    ignored = expand_ignored(model, ignored)
    if ratio is not None:
        check_ratio(ratio)
    if target is not None:
        target = Target.coerce(target)
    refuse_hooked(model)  # before scoring: the copy apply_plan makes would fail after it
    ignored = ignored_module_names(model, ignored)  # as names, once: trace reads the same list
    warn_reparams(model, ignored)
    graph = graph or trace(model, example_inputs, ignored=ignored, allow_inexact=allow_inexact)
    crit = get_criterion(criterion)
    if calib_batches is not None and hasattr(crit, "calib_batches"):
        crit.calib_batches = calib_batches
    if task is not None:
        give_task(crit, criterion, task)
    if crit.needs - {"weights"} and data is None:
        raise PruningError(
            f"criterion {criterion!r} needs {', '.join(sorted(crit.needs - {'weights'}))}: pass data= "
            "(an iterable of (inputs, labels) batches, e.g. a DataLoader)"
        )
    scores = crit.score(model, graph, data)
    meta = {
        "criterion": criterion if isinstance(criterion, str) else type(criterion).__name__,
        "allow_inexact": allow_inexact,
    }
    if widths is not None:
        plan = widths_plan(graph, scores, widths, meta=meta)
    elif target is not None:
        plan = target_plan(
            model,
            example_inputs,
            graph,
            scores,
            target,
            strategy=strategy,
            round_to=round_to,
            min_channels=min_channels,
            meta=meta,
            latency=latency,
            runtime=runtime,
            threads=threads,
            scale=scale,
        )
    elif ratios is not None:
        plan = ratios_plan(
            model, graph, scores, ratios, ratio, round_to=round_to, min_channels=min_channels, meta=meta
        )
    elif round_to == "auto":  # the same MACs as the exact uniform ratio, widths chosen by measurement
        from netsculpt.allocate import CostModel

        exact = uniform_plan(graph, scores, ratio, round_to=1, min_channels=min_channels)
        cost = CostModel(model, graph, example_inputs)
        goal = Target(macs=max(cost.fraction(exact.keep, "macs"), 1e-6))
        plan = target_plan(
            model, example_inputs, graph, scores, goal, strategy="uniform", round_to="auto",
            min_channels=min_channels, cost=cost, latency=latency, runtime=runtime, threads=threads,
            meta={**meta, "ratio": ratio},
        )  # fmt: skip
    else:
        plan = uniform_plan(
            graph,
            scores,
            ratio,
            round_to=round_to,
            min_channels=min_channels,
            meta={**meta, "ratio": ratio, "round_to": round_to},
        )
    return stamp(plan, model), graph


def check_ratios(ratios: Any, target: Any, widths: Any, round_to: Any) -> None:
    """``ratios=`` refines the uniform ratio; with a target or exact widths it would mean two plans."""
    if ratios is None:
        return
    checks.instance(
        ratios, dict, "ratios", "a dict of module name / glob / class / module -> ratio", error=PruningError
    )
    if target is not None or widths is not None:
        raise PruningError(
            "ratios= sets a ratio per layer and goes with ratio= (what every other group loses), not with "
            f"{'target=' if target is not None else 'widths='}; to keep layers whole under a target pass "
            "ignored=[...]"
        )
    if round_to == "auto":
        raise PruningError(
            "ratios= with round_to='auto' is not supported (auto re-solves every width to one MACs "
            "target); pass round_to='hw' (the default) or an integer"
        )


_OPTIONAL: dict[str, Any] = {"error": PruningError, "optional": True}
_GRAPH = "a ChannelGraph from ns.trace(model, x), or None"


def _check_options(
    model: Any,
    widths: Any,
    strategy: Any,
    calib_batches: Any,
    allow_inexact: Any,
    min_channels: Any,
    graph: Any,
    threads: Any,
) -> None:
    """Refuse wrong types before any work, naming the option (they failed deep in allocation before)."""
    checks.materialised(checks.module(model, error=PruningError), "prune", PruningError)
    checks.instance(widths, dict, "widths", "a dict of group id or module name -> channels kept", **_OPTIONAL)
    if strategy not in STRATEGIES:
        raise checks.refuse("strategy", strategy, f"one of {', '.join(STRATEGIES)}", "", PruningError)
    checks.optional_whole(calib_batches, "calib_batches", error=PruningError)
    checks.flag(allow_inexact, "allow_inexact", error=PruningError)
    checks.whole(min_channels, "min_channels", error=PruningError)
    checks.whole(threads, "threads", error=PruningError)
    checks.instance(graph, ChannelGraph, "graph", _GRAPH, **_OPTIONAL)


def give_task(crit: Any, criterion: Any, task: Any) -> None:
    """Hand a data-driven criterion the task; refuse one that needs a class label per image without it."""
    from netsculpt.tasks import get_task

    resolved = get_task(task)
    name = criterion if isinstance(criterion, str) else type(criterion).__name__
    if getattr(crit, "per_image_labels", False) and not resolved.per_image_labels:
        raise PruningError(
            f"criterion {name!r} needs one class label per image, and the {resolved.name} task's targets are "
            f"{'boxes' if resolved.name == 'detection' else 'per-pixel maps'}; use taylor or fisher (they "
            "differentiate the task's own loss), chip or hrank (no labels), or a weight criterion (l1, fpgm)"
        )
    if crit.needs - {"weights"}:
        crit.task = resolved


def apply_plan(
    model: nn.Module,
    plan: PrunePlan,
    example_inputs: Any,
    *,
    inplace: bool = False,
    graph: ChannelGraph | None = None,
) -> nn.Module:
    """Replay ``plan`` on ``model`` (re-tracing it) and return the smaller model.

    ``plan`` is a :class:`PrunePlan` or its ``to_dict()`` form (what ``plan.save`` writes).
    A plan made for another model is refused before any surgery, naming the first group that differs."""
    checks.materialised(checks.module(model, error=PruningError), "prune", PruningError)
    checks.flag(inplace, "inplace", "ns.apply_plan", PruningError)
    plan = _as_plan(plan)
    checks.instance(graph, ChannelGraph, "graph", _GRAPH, **_OPTIONAL)
    refuse_compiled(model)  # also when a graph is given: surgery would change the compiled wrapper
    refuse_hooked(model)
    graph = graph or trace(model, example_inputs, allow_inexact=bool(plan.meta.get("allow_inexact", False)))
    check_plan_fits(graph, plan, model)
    target = model if inplace else copy.deepcopy(model)
    undo = _undo_surgery(target) if inplace else lambda: None  # a failure leaves the model as it was
    try:
        ensure_base(target)  # before surgery: a model netsculpt did not build is saved by what it was
        apply_plan_(target, graph, plan)
        append_plan(target, plan.to_dict(), graph.input_shapes, layout_of(as_tuple(example_inputs)))
    except BaseException:
        undo()
        raise
    try:
        _check_runs(target, example_inputs, graph.traced_training)
    except PruningError as err:
        undo()
        culprits = _groups_that_break(model, graph, plan, example_inputs)
        if culprits is None:
            raise PruningError(
                f"{err} An unpruned copy of the model fails the same way, so no pruned width is the cause: "
                "check that the model runs on these example inputs; if it does, report it to netsculpt "
                "(the model's state after tracing stops it running)."
            ) from err.__cause__
        if not culprits:
            raise
        raise PruningError(
            f"{err} Pruning any of these groups on its own breaks it: {', '.join(culprits)}; pass "
            "ignored=[...] with those layers (or keep allow_inexact off)."
        ) from err.__cause__
    return target


def _as_plan(plan: Any) -> PrunePlan:
    """A PrunePlan, or the dict ``PrunePlan.to_dict`` / ``plan.save`` gives; anything else is refused."""
    if isinstance(plan, PrunePlan):
        return plan
    if isinstance(plan, dict):
        return PrunePlan.from_dict(plan)
    raise checks.refuse(
        "plan",
        plan,
        "a PrunePlan (from ns.plan_pruning or PrunePlan.load(path)) or its to_dict() form",
        "ns.apply_plan",
        PruningError,
    )


def _undo_surgery(model: nn.Module) -> Callable[[], None]:
    """What undoes an in-place surgery: the module attributes fixups rewrite and the parameter objects
    slicing replaces (ModuleSnapshot puts both back by identity), and the netsculpt record of edits."""
    snapshot = ModuleSnapshot(model)
    spec = copy.deepcopy(model_spec(model))

    def undo() -> None:
        snapshot.restore()  # also drops a record added by this call
        if spec is not None:  # an earlier record was appended to in place
            object.__setattr__(model, SPEC_ATTR, spec)

    return undo


def _groups_that_break(
    model: nn.Module, graph: ChannelGraph, plan: PrunePlan, example_inputs: Any, limit: int = 64
) -> list[str] | None:
    """Which groups fail on their own: one surgery + forward per group, only after a failure, so the
    error can name what to ignore instead of a line deep inside the model's code. None when an unpruned
    copy fails too: naming groups then would blame widths that are not the cause."""
    try:
        _check_runs(copy.deepcopy(model), example_inputs, graph.traced_training)
    except PruningError:
        return None
    broken = []
    for gid in list(plan.keep)[:limit]:
        trial = copy.deepcopy(model)
        try:
            apply_plan_(trial, graph, PrunePlan(keep={gid: plan.keep[gid]}, sizes={gid: plan.sizes[gid]}))
            _check_runs(trial, example_inputs, graph.traced_training)
        except Exception:
            broken.append(gid)
    return broken


def prune(model: nn.Module, example_inputs: Any, *, inplace: bool = False, **options: Any) -> nn.Module:
    """Return a physically smaller copy of ``model`` (the original is untouched unless ``inplace``).

    Options are those of ``plan_pruning``: ``criterion`` (see ``ns.list_criteria()``), one of ``ratio`` /
    ``target`` / ``widths`` (``ratios`` per layer, with ``ratio``), ``strategy``, ``data`` and
    ``calib_batches`` for data-driven criteria,
    ``ignored`` modules, ``allow_inexact``, ``round_to`` (default ``"hw"``), ``min_channels``,
    ``runtime`` / ``threads`` (what ``round_to="auto"`` and latency targets measure on).

    On eager PyTorch at batch 1, thin-and-deep nets (MobileNetV2) pay per-layer and activation costs that
    a width prune keeps: at 0.5x MACs the default reaches only ~0.75 of the MACs speed-up there. Removing
    whole blocks first (``ns.prune_depth(model, x, blocks=..., data=...)``, then this with the remaining
    target) measured 0.81-0.84 and kept more accuracy after fine-tuning; ``strategy="fast"`` is faster
    too but lost 45-60 points of accuracy even after fine-tuning (docs/engine.md, "Pricing activation
    volume").
    """
    checks.known_options(options, plan_pruning, "ns.prune", PruningError)
    checks.flag(inplace, "inplace", "ns.prune", PruningError)
    plan, graph = plan_pruning(model, example_inputs, **options)
    return apply_plan(model, plan, example_inputs, inplace=inplace, graph=graph)


def _check_runs(model: nn.Module, example_inputs: Any, training: bool = False) -> None:
    """Run the pruned model once: a width hard-coded in a layer's code fails here, not in the user's hands.

    ``training`` (a graph traced in train mode) also runs train mode's forward, with the model's buffers
    and attributes restored afterwards, so branches only training runs are checked too."""
    try:
        with torch.no_grad(), eval_mode(model):  # each module's own flag comes back (a frozen norm stays)
            model(*as_tuple(example_inputs))
            if training:
                snapshot = ModuleSnapshot(model)
                try:
                    training_branches_mode(model)
                    model(*as_tuple(example_inputs))
                finally:
                    snapshot.restore()
    except Exception as exc:
        raise PruningError(
            f"the pruned model no longer runs ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
            "A module probably stores a channel count in its own code; pass ignored=[that module] or "
            "register a fixup (netsculpt.surgery.register_fixup)."
        ) from exc
