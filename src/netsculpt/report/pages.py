"""One run's report page, and the sections the comparison page shares with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netsculpt.report import format as fmt
from netsculpt.report.html import esc, figure, note, page, pre, section, table
from netsculpt.report.pareto import pareto_front
from netsculpt.report.plots import Series, colour, select_layers, short_name, tradeoff_chart, widths_chart
from netsculpt.report.run import COSTS, Point, Run, Stage
from netsculpt.report.runtimes import LABELS as RUNTIME_LABELS

SHORT_LIST = 25  # up to this many models are listed in full; a search's thousands are folded away
POINT_ROWS = 500  # the folded list stops here: the page should stay a page


def value_of(record: Any, key: str) -> Any:
    """A field of a ModelRecord or Point, or None when the record or the field is missing."""
    return getattr(record, key, None) if record is not None else None


def summary_table(run: Run) -> str:
    b, a = run.before, run.after
    if b is None and a is None:
        return note("No measured models in results.json: nothing to summarise.", "missing")

    def row(label: str, key: str, show: Any, smaller: str, larger: str) -> list:
        x, y = value_of(b, key), value_of(a, key)
        text, cls = fmt.reduction(x, y, smaller, larger)
        return [(esc(label), "name"), esc(show(x)), esc(show(y)), (esc(text), cls)]

    acc_text, acc_cls = fmt.accuracy_change(value_of(b, "accuracy"), value_of(a, "accuracy"))
    rows = [
        [
            (esc(run.score_label), "name"),
            esc(fmt.percent(value_of(b, "accuracy"))),
            esc(fmt.percent(value_of(a, "accuracy"))),
            (esc(acc_text), acc_cls),
        ],
        *_task_rows(run),
        row("parameters", "params", fmt.count, "smaller", "larger"),
        row("MACs (batch 1)", "macs", fmt.count, "fewer", "more"),
        row("peak activation memory", "peak_activation_bytes", fmt.size, "smaller", "larger"),
        row("size on disk", "size_bytes", fmt.size, "smaller", "larger"),
        _side_by_side_row(run)
        or row("latency (PyTorch, batch 1)", "latency_ms", fmt.millis, "faster", "slower"),
    ]
    rows += _extra_latencies(b, a)
    rows = [r for r in rows if r[1] != fmt.MISSING or r[2] != fmt.MISSING]
    return table(["", "before", "after", "change"], rows, cls="summary")


def _side_by_side_row(run: Run) -> list | None:
    """Baseline and final model timed alternately at the end of the run (``latency_side_by_side``): their
    ratio, not two timings taken minutes apart on a machine whose load changed in between."""
    side = getattr(run.results, "latency_side_by_side", None)
    if not isinstance(side, dict) or not side.get("input_ms") or not side.get("output_ms"):
        return None
    x, y = side["input_ms"], side["output_ms"]
    text, cls = fmt.reduction(x, y, "faster", "slower")
    label = f"latency ({side.get('runtime')}, batch {side.get('batch')}, side by side)"
    return [(esc(label), "name"), esc(fmt.millis(x)), esc(fmt.millis(y)), (esc(text), cls)]


def _task_rows(run: Run) -> list[list]:
    """A dense task's other metrics (mAP@.5 beside mAP@[.5:.95], pixel accuracy beside mIoU)."""
    labels = run.task.get("labels") or {}
    before = value_of(run.before, "task_metrics") or {}
    after = value_of(run.after, "task_metrics") or {}
    rows = []
    for key, label in labels.items():
        if key == run.task.get("metric") or (key not in before and key not in after):
            continue
        x, y = before.get(key), after.get(key)
        text, cls = fmt.accuracy_change(x, y)
        rows.append([(esc(label), "name"), esc(fmt.percent(x)), esc(fmt.percent(y)), (esc(text), cls)])
    return rows


def _extra_latencies(b: Any, a: Any) -> list[list]:
    """Rows for every other runtime/batch size both models were timed at (ONNX Runtime, batch 8 ...)."""
    lb, la = value_of(b, "latency") or {}, value_of(a, "latency") or {}
    rows = _int8_latencies(lb, la)
    for runtime, by_batch in lb.items():
        for batch, ms in by_batch.items():
            other = la.get(runtime, {}).get(batch)
            if other is None or (runtime == "torch" and batch == "1"):
                continue
            text, cls = fmt.reduction(ms, other, "faster", "slower")
            name = RUNTIME_LABELS.get(runtime, runtime)
            rows.append(
                [
                    (esc(f"latency ({name}, batch {batch})"), "name"),
                    esc(fmt.millis(ms)),
                    esc(fmt.millis(other)),
                    (esc(text), cls),
                ]
            )
    return rows


def _int8_latencies(lb: dict, la: dict) -> list[list]:
    """An int8 artefact is timed on its own runtime only: set it against the float model on that same
    runtime when the baseline was timed there, never against PyTorch."""
    rows = []
    for key, by_batch in la.items():
        if not key.endswith("-int8"):
            continue
        runtime = key.removesuffix("-int8")
        name = RUNTIME_LABELS.get(runtime, runtime)
        for batch, ms in by_batch.items():
            before = lb.get(runtime, {}).get(batch)
            text, cls = fmt.reduction(before, ms, "faster", "slower")
            label = f"latency ({name}, batch {batch}; before float, after int8)"
            rows.append(
                [(esc(label), "name"), esc(fmt.millis(before)), esc(fmt.millis(ms)), (esc(text), cls)]
            )
    return rows


def _machine_note(run: Run) -> str:
    r = run.results
    parts = []
    if r.wall_seconds is not None:
        parts.append(f"wall time {fmt.seconds(r.wall_seconds)}")
    cal = r.calibration or value_of(run.after, "calibration")
    if cal is not None and cal.matmul_gflops is not None:
        parts.append(
            f"CPU calibration {cal.matmul_gflops:.1f} GFLOP/s matmul, {cal.python_loop_ms or 0:.1f} ms "
            "Python loop (compare timings across machines with these)"
        )
    threads = r.threads or value_of(run.after, "threads")
    if threads:
        parts.append(f"{threads} torch thread{'s' if threads != 1 else ''}")
    return note(esc(" \u00b7 ".join(parts))) if parts else ""


def tradeoff_section(series: Sequence[Series], intro: str, score: str = "accuracy") -> str:
    figures = []
    better = "more accurate" if score == "accuracy" else f"higher in {score}"
    for key, label, unit in COSTS:
        uri = tradeoff_chart(series, key, label, unit, score)
        caption = esc(
            f"Every evaluated model; the line joins the Pareto front (no model is both {better} "
            f"and cheaper in {short_name(label)})."
        )
        figures.append(
            figure(uri, f"{score} vs {label}", caption, missing=f"{score} vs {label}: not recorded")
        )
    return section(
        "Accuracy against cost" if score == "accuracy" else f"{score} against cost",
        note(esc(intro)),
        '<div class="grid">' + "".join(figures) + "</div>",
        anchor="tradeoffs",
    )


def widths_section(run: Run) -> str:
    bits = bits_table(run)
    if not run.widths:
        missing = note("No per-layer widths or prune plans recorded.", "missing")
        return section("Layer widths", missing, *([bits] if bits else []))
    shown, dropped = select_layers(run.widths)
    changed = sum(1 for w in run.widths if w.before != w.after)
    caption = esc(f"From {run.widths_source}. {changed} of {len(run.widths)} layers changed width.")
    if dropped:
        caption += esc(f" {dropped} unchanged layers are left out of the chart.")
    return section(
        "Layer widths",
        figure(widths_chart(shown), "layer widths before and after", caption, cls="layers"),
        *([bits] if bits else []),
        anchor="widths",
    )


def bits_table(run: Run) -> str:
    """Palette bits per layer beside the layer's width, for runs that searched mixed bits."""
    bits = next((s.bits for s in reversed(run.stages) if s.bits), {})
    if not bits:
        return ""
    widths = {w.name: w.after for w in run.widths}
    rows = [[esc(name), esc(str(widths.get(name, "")) if widths.get(name) is not None else ""), str(b)]
            for name, b in bits.items()]  # fmt: skip
    return note("Bits per weight index, per layer (searched under a byte budget):") + table(
        ["layer", "width", "bits"], rows
    )


def _points_table(points: Sequence[Point], fronts: dict[str, set[int]], score: str = "accuracy") -> str:
    rows = []
    for p in points:
        on = [short_name(label) for key, label, _ in COSTS if id(p) in fronts[key]]
        if p.on_search_front:
            on.append("search")
        rows.append(
            [
                (esc(p.name) + (f" <small>({esc(p.role)})</small>" if p.role else ""), "name"),
                (esc(p.stage or ""), "text"),
                esc(fmt.percent(p.accuracy)),
                esc(fmt.count(p.params)),
                esc(fmt.count(p.macs)),
                esc(fmt.size(p.size_bytes)),
                esc(fmt.millis(p.latency_ms)),
                (esc(", ".join(on) or fmt.MISSING), "text"),
            ]
        )
    header = [("model", "name"), ("stage", "text"), score, "params", "MACs", "size", "latency",
              ("on the front for", "text")]  # fmt: skip
    return table(header, rows, drop_empty=True)


def points_section(run: Run) -> str:
    """Every evaluated model; a long list (a search) shows the front first and the rest folded away."""
    if not run.points:
        return ""
    fronts = {key: {id(p) for p in pareto_front(run.points, key)} for key, _, _ in COSTS}
    if len(run.points) <= SHORT_LIST:
        return section(
            "Evaluated models", _points_table(run.points, fronts, run.score_label), anchor="points"
        )
    on_front = set().union(*fronts.values())
    chosen = [p for p in run.points if id(p) in on_front or p.role or p.on_search_front]
    shown = run.points[:POINT_ROWS]
    cut = f" (the first {POINT_ROWS})" if len(run.points) > POINT_ROWS else ""
    intro = (
        f"{len(chosen)} of {len(run.points)} models are on a Pareto front, the baseline or the final model:"
    )
    folded = (
        f"<details><summary>all {len(run.points)} models{esc(cut)}</summary>"
        f"{_points_table(shown, fronts, run.score_label)}"
    )
    return section(
        "Evaluated models",
        note(esc(intro)),
        _points_table(chosen, fronts, run.score_label),
        folded + "</details>",
        anchor="points",
    )


def _stage_settings(stage: Stage) -> str:
    """One line: what the prune plan removed, then every setting that was given (no nulls)."""
    given = ", ".join(
        f"{k}={fmt.setting(v)}" for k, v in stage.settings.items() if v not in (None, {}, []) and k != "kind"
    )
    plan = stage.plan
    if plan is None:
        return given
    pruned = sum(1 for g, k in plan.keep.items() if len(k) < plan.sizes.get(g, len(k)))
    removed = sum(plan.sizes.get(g, len(k)) - len(k) for g, k in plan.keep.items())
    summary = f"plan: {pruned} groups pruned, {removed} channels removed"
    return f"{summary}; {given}" if given else summary


def _guard_cell(guard: dict | None) -> str:
    """The after-stage latency guard: ``0.55x (1.83x faster) on torch``, flagged when slower."""
    if not guard:
        return ""
    if "error" in guard or not guard.get("output_ms"):
        return f"not timed on {guard.get('runtime')}"
    ratio = guard["output_ms"] / guard["input_ms"] if guard.get("input_ms") else float("nan")
    flag = "SLOWER " if guard.get("slower") else ""
    return f"{flag}{ratio:.2f}x time on {guard.get('runtime')} b{guard.get('batch')}"


def stages_section(run: Run) -> str:
    if not run.stages:
        return ""
    compare = getattr(run.results, "compare_random", None) or {}
    random_acc = {r.get("index"): r.get("accuracy") for r in compare.get("stages", [])}
    rows = []
    for i, s in enumerate(run.stages):
        rows.append(
            [
                esc(i + 1),
                (esc(s.name), "name"),
                (esc(s.kind or ""), "text"),
                esc(fmt.percent(s.accuracy)),
                esc(fmt.percent(random_acc.get(i))) if random_acc else "",
                esc(fmt.count(s.params)),
                esc(fmt.count(s.macs)),
                esc(fmt.seconds(s.seconds)),
                esc(_guard_cell(s.guard)),
                (esc("; ".join(filter(None, [s.note, _stage_settings(s)]))) or fmt.MISSING, "settings"),
            ]
        )
    header = [
        "#",
        ("stage", "name"),
        ("kind", "text"),
        run.score_label,
        "same stages, random criterion" if random_acc else "",
        "params",
        "MACs",
        "time",
        "latency vs input" if any(s.guard for s in run.stages) else "",
        ("settings", "text"),
    ]
    return section("Stages", table(header, rows, drop_empty=True), anchor="stages")


def recipe_section(run: Run) -> str:
    if run.recipe:
        return section("Recipe", pre(run.recipe), anchor="recipe")
    intro = note("No recipe recorded (this run was made by <code>netsculpt compress</code>); its settings:")
    return section("Recipe", intro, settings_table(run), anchor="recipe")


def settings_table(run: Run) -> str:
    """The job settings of a run that has no recipe text (the older ``compress`` job)."""
    rows = [[(esc(k), "name"), (esc(fmt.setting(v)), "text")] for k, v in run.settings.items()]
    return table([("setting", "name"), ("value", "text")], rows) if rows else note("none recorded", "missing")


def run_page(run: Run, weights_name: str | None = None, runtimes_name: str = "runtimes.html") -> str:
    """The run report; ``weights_name`` / ``runtimes_name``: the companion pages written beside it."""
    from netsculpt.report.explain_section import explain_section
    from netsculpt.report.runtimes import runtimes_link
    from netsculpt.report.weights_page import sparse_speed_note, weights_link

    subtitle = esc(f"run {run.path.resolve().name} \u00b7 results.json schema version {run.results.version}")
    score = run.score_label
    intro = (
        f"{'Accuracy' if score == 'accuracy' else score} is on the held-out test split; costs are at "
        "batch 1 of the example input. The square is the baseline, the star the final model."
    )
    sections = [
        section("Summary", summary_table(run), sparse_speed_note(run), _machine_note(run), anchor="summary"),
        tradeoff_section([Series(run.label, run.points, colour(0))], intro, score),
        widths_section(run),
        explain_section(run.path),
        stages_section(run),
        points_section(run),
        recipe_section(run),
    ]

    sections.insert(2, runtimes_link(run, runtimes_name))
    sections.insert(3, weights_link(weights_name))
    return page(run.title, subtitle, [s for s in sections if s])
