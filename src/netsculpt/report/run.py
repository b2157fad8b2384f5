"""One run, read once into what a report shows: summary pair, points, stages, layer widths, recipe.

Both shapes of ``results.json`` land here (see :mod:`netsculpt.report.schema`), so plots and HTML
never branch on which job wrote the file. Whatever is missing becomes ``None`` or an empty list, and
the report says "not recorded" instead of failing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netsculpt.report.schema import ModelRecord, PlanRecord, PointRecord, Results, StageRecord, load_results

# Cost axes of the trade-off plots: point attribute, axis label, unit kind (for number formatting).
COSTS: tuple[tuple[str, str, str], ...] = (
    ("macs", "MACs (batch 1)", "count"),
    ("latency_ms", "latency, batch 1 (ms)", "ms"),
    ("size_bytes", "size on disk", "bytes"),
)


@dataclass
class Point:
    """One evaluated model; ``role`` is "baseline" or "final" for the two the summary compares."""

    name: str
    stage: str | None = None
    accuracy: float | None = None
    params: int | None = None
    macs: int | None = None
    size_bytes: int | None = None
    latency_ms: float | None = None
    role: str | None = None
    on_search_front: bool = False


@dataclass
class Stage:
    name: str
    kind: str | None
    accuracy: float | None
    params: int | None
    macs: int | None
    seconds: float | None
    settings: dict[str, Any]
    plan: PlanRecord | None
    guard: dict[str, Any] | None = None  # latency vs the stage's input (netsculpt.pipeline.guards)
    bits: dict[str, int] = field(default_factory=dict)  # palette bits per layer (mixed-bit clustering)
    latency: dict[str, dict[str, float]] = field(default_factory=dict)  # runtime -> batch -> ms
    note: str | None = None  # a quantize stage's choice of int8 or float and why (runtime: auto)


@dataclass
class LayerWidth:
    """Output channels (conv) or features (linear) of one layer before and after compression."""

    name: str
    type: str
    before: int | None
    after: int | None


@dataclass
class Run:
    path: Path
    label: str
    title: str
    results: Results
    before: ModelRecord | Point | None
    after: ModelRecord | Point | None
    points: list[Point]
    stages: list[Stage]
    widths: list[LayerWidth]
    widths_source: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def recipe(self) -> str | None:
        return self.results.recipe

    @property
    def task(self) -> dict[str, Any]:
        """``results.json``'s task record (name, headline metric and labels); classification if absent."""
        task = getattr(self.results, "task", None)
        return task if isinstance(task, dict) else {}

    @property
    def score_label(self) -> str:
        """What the "accuracy" of this run's models is: accuracy, mAP@[.5:.95], mIoU."""
        return str(self.task.get("label") or "accuracy")


def load_run(run_dir: str | os.PathLike[str], label: str | None = None) -> Run:
    """Read ``RUN_DIR/results.json`` (validated) into a :class:`Run`."""
    path = Path(run_dir)
    results = load_results(path)
    folder = path if path.is_dir() else path.parent
    return build_run(results, folder, label=label)


def build_run(results: Results, folder: Path, label: str | None = None) -> Run:
    stages = _stages(results)
    points = _points(results, stages)
    before, after = _summary_pair(results, points)
    widths, source = _widths(
        before if isinstance(before, ModelRecord) else None,
        after if isinstance(after, ModelRecord) else None,
        stages,
    )
    job = results.job or {}
    name = results.name or folder.resolve().name
    model, data = job.get("model"), job.get("data")
    title = f"{model} on {data}" if model and data else name
    return Run(
        path=folder,
        label=label or name,
        title=title,
        results=results,
        before=before,
        after=after,
        points=points,
        stages=stages,
        widths=widths,
        widths_source=source,
        settings={k: v for k, v in job.items() if v not in (None, {}, [])},
    )


def _named_records(results: Results) -> list[tuple[str, StageRecord]]:
    """(name, record) per stage: the dict key, else the record's folder or kind."""
    stages = results.stages
    if isinstance(stages, dict):
        return list(stages.items())
    return [(s.dir or s.kind or f"stage {i}", s) for i, s in enumerate(stages)]


def _summary_pair(results: Results, points: list[Point]) -> tuple[Any, Any]:
    """Before/after for the summary table: recorded pair, else first/last stage metrics, else points."""
    records = [s.metrics for _, s in _named_records(results) if s.metrics is not None]
    roles = {p.role: p for p in points}
    before = results.before or (records[0] if records else None) or roles.get("baseline")
    after = results.after or (records[-1] if len(records) > 1 else None) or roles.get("final")
    return before, after


def _stages(results: Results) -> list[Stage]:
    out = []
    for key, rec in _named_records(results):
        metrics = rec.metrics
        accuracy = metrics.accuracy if metrics and metrics.accuracy is not None else rec.accuracy
        if accuracy is None:
            accuracy = rec.accuracy_before_finetune
        out.append(
            Stage(
                name=key,
                kind=rec.kind or (key if isinstance(results.stages, dict) else None),
                accuracy=accuracy,
                params=metrics.params if metrics else None,
                macs=metrics.macs if metrics else None,
                seconds=rec.seconds,
                settings=dict(rec.settings or {}),
                plan=rec.plan or (rec.info.plan if rec.info else None),
                guard=getattr(rec, "guard", None) if isinstance(getattr(rec, "guard", None), dict) else None,
                bits=_layer_bits(rec),
                latency=_latency(metrics),
                note=_decision(rec),
            )
        )
    return out


def _decision(rec: Any) -> str | None:
    """The reason a ``runtime: auto`` quantize stage kept int8 or the float model, when it recorded one."""
    decision = getattr(rec.info, "decision", None) if rec.info is not None else None
    return decision.get("reason") if isinstance(decision, dict) else None


def _latency(metrics: ModelRecord | None) -> dict[str, dict[str, float]]:
    """runtime -> batch -> ms of a stage's model; PyTorch batch 1 from ``latency_ms`` when not listed."""
    if metrics is None:
        return {}
    out = {runtime: dict(by_batch) for runtime, by_batch in metrics.latency.items()}
    if metrics.latency_ms is not None:
        out.setdefault("torch", {}).setdefault("1", metrics.latency_ms)
    return out


def _layer_bits(rec: StageRecord) -> dict[str, int]:
    """``layer_bits`` a cluster stage reported (``bits: auto``), kept only if it is a name -> int map."""
    bits = getattr(rec.info, "layer_bits", None) if rec.info else None
    if not isinstance(bits, dict):
        return {}
    return {str(k): int(v) for k, v in bits.items() if isinstance(v, int) and not isinstance(v, bool)}


def _from_record(name: str, stage: str | None, m: ModelRecord) -> Point:
    return Point(name, stage, m.accuracy, m.params, m.macs, m.size_bytes, m.latency_ms)


def _from_point(p: PointRecord) -> Point:
    return Point(p.name, p.stage, p.accuracy, p.params, p.macs, p.size_bytes, p.latency_ms)


def _points(results: Results, stages: list[Stage]) -> list[Point]:
    """The run's points; derived from stage metrics or before/after when the file lists none.

    The baseline is the point of stage "baseline" (else the first); the final model is the point named
    after the last stage (else the last point), so search candidates listed after it do not take its place.
    """
    if results.points:
        points = [_from_point(p) for p in results.points]
    else:
        named = _named_records(results)
        points = [_from_record(name, s.kind, s.metrics) for name, s in named if s.metrics is not None]
        if not points:
            pairs = (("before", results.before), ("after", results.after))
            points = [_from_record(name, None, m) for name, m in pairs if m is not None]
    if points:  # roles first: a search's extra Pareto entries appended below are neither
        baseline = next((p for p in points if p.stage == "baseline"), points[0])
        baseline.role = "baseline"
        named = _named_records(results)
        last_stage = named[-1][0] if named else None  # the final model is the last stage's, wherever listed
        final = next((p for p in reversed(points) if p.name == last_stage), points[-1])
        if final is not baseline:
            final.role = "final"
    by_name = {p.name: p for p in points}
    for entry in results.pareto:
        name = entry if isinstance(entry, str) else entry.name
        if name not in by_name and not isinstance(entry, str):
            by_name[name] = _from_point(entry)
            points.append(by_name[name])
        if name in by_name:
            by_name[name].on_search_front = True
    return points


def _width(layer_type: str, shape: list[int] | None) -> int | None:
    """Channels a conv produces (dim 1) or features a linear layer produces (last dim)."""
    if not shape or len(shape) < 2:
        return None
    if "Conv" in layer_type:
        return shape[1]
    if "Linear" in layer_type:
        return shape[-1]
    return None


def _layer_widths(record: ModelRecord | None) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for layer in record.layers if record else []:
        width = _width(layer.type, layer.output_shape)
        if width is not None and layer.name not in out:  # a module called twice is listed once
            out[layer.name] = (layer.type, width)
    return out


def _widths(before: ModelRecord | None, after: ModelRecord | None, stages: list[Stage]) -> tuple[list, str]:
    """Per-layer widths from the measured layers; else from the prune plans' group sizes."""
    first, last = _layer_widths(before), _layer_widths(after)
    if first and last:
        names = list(first) + [n for n in last if n not in first]
        rows = [LayerWidth(n, (first.get(n) or last[n])[0], _get(first, n), _get(last, n)) for n in names]
        return rows, "measured layers (output channels of each conv, features of each linear layer)"
    plans = [s.plan for s in stages if s.plan is not None]
    if not plans:
        return [], "not recorded"
    sizes = {g: n for g, n in plans[0].sizes.items() if ":" not in g}  # "conv1:in" is the input, not a layer
    kept = dict(sizes)
    for plan in plans:  # later plans act on the model the earlier ones left
        kept.update({g: len(k) for g, k in plan.keep.items() if g in kept})
    rows = [LayerWidth(g, "group", n, kept[g]) for g, n in sizes.items()]
    return rows, "prune plans (channels kept per coupled group, named after its first layer)"


def _get(table: dict[str, tuple[str, int]], name: str) -> int | None:
    return table[name][1] if name in table else None
