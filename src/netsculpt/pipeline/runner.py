"""Run a recipe into a run directory, stage by stage, resumable.

Layout: ``RUN_DIR/recipe.yaml`` (the recipe as given), ``run.log``, one folder per stage
(``00_baseline``, ``01_prune`` ...) holding the stage's model (safetensors + spec), its settings and
metrics (``stage.json``) and a ``DONE`` marker written last, then ``results.json`` and ``report.html``.
Rerunning the same command skips every stage that has its marker.

Faults: a run holds ``run.lock`` (:mod:`netsculpt.pipeline.lock`) so a second run into the folder is
refused. Every file is written atomically and a stage's marker only after its model and ``stage.json``,
so a run killed anywhere resumes from its last finished stage (training stages from their last epoch
checkpoint) and ends with the results an uninterrupted run would have. A full disk stops the run with a
:class:`~netsculpt.errors.DiskFullError` and leaves the finished stages as they were.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from torch import nn

from netsculpt import faults
from netsculpt.errors import DiskFullError, NetsculptError
from netsculpt.fileio import disk_full_reason, write_json, write_text
from netsculpt.pipeline import guards
from netsculpt.pipeline.dense import build_on_meta, check_distill_heads, task_record
from netsculpt.pipeline.lock import RunLock
from netsculpt.pipeline.quantize_stage import (
    check_quantize_batches,
    check_quantize_detector,
    check_quantize_part,
)
from netsculpt.pipeline.recipe import Recipe
from netsculpt.pipeline.recipe_change import check_recipe_change, clear_stages, stage_dirs
from netsculpt.pipeline.run_context import build_context
from netsculpt.pipeline.sparsify_check import SHAPE_KEEPING, check_sparsify_stages
from netsculpt.pipeline.stages import STAGES, RunContext
from netsculpt.report.schema import SCHEMA_VERSION, validate_results

log = logging.getLogger("netsculpt")


def _is_onnx(model: nn.Module) -> bool:
    """An int8 artefact (ONNX, OpenVINO IR, exported program) rather than a model netsculpt saves."""
    from netsculpt.runtimes.artefacts import is_artefact

    return is_artefact(model)


def _measure(model: nn.Module, ctx: RunContext, runs: int, previous: dict[str, Any] | None) -> dict[str, Any]:
    from netsculpt.measure import measure

    acc, loss, scores = ctx.evaluate(model)
    task_metrics = {"task_metrics": scores} if scores else {}
    if _is_onnx(model):  # an int8 artefact: same architecture as before, timed on its own runtime
        from netsculpt.measure import measure_latency
        from netsculpt.runtimes.artefacts import artefact_size, timing_runtime

        runtime = timing_runtime(model)
        latency = measure_latency(model, ctx.example, runs=runs, runtime=runtime)
        counts = ("params", "macs", "peak_activation_bytes", "layers", "batch_size")
        keep = {k: (previous or {}).get(k) for k in counts}
        return {
            "accuracy": acc,
            "loss": loss,
            **task_metrics,  # mAP@.5 beside mAP, pixel accuracy beside mIoU: an int8 model dropped them
            **keep,
            "size_bytes": artefact_size(model),
            # not latency_ms: that is PyTorch eager, and the summary would set int8-on-another-runtime
            # against the float model on PyTorch as if they were the same measurement
            "latency_ms": None,
            "latency": {f"{runtime}-int8": {"1": latency}},
        }
    metrics = measure(model, ctx.example, runs=runs, onnx=ctx.recipe.outputs.onnx)
    return {"accuracy": acc, "loss": loss, **task_metrics, **metrics.to_dict()}


def run_recipe(
    recipe: Recipe, text: str, run_dir: str | Path, *, force: bool = False, trust_builder: str | None = None
) -> dict[str, Any]:
    """Run (or resume) ``recipe``; returns the results also written to ``RUN_DIR/results.json``.

    ``trust_builder``: passed to every ``netsculpt.load`` of the run (see docs/security.md).

    Raises:
        RunLockedError: another process is running in ``run_dir`` (its PID is in the message).
        DiskFullError: the disk filled up; stages finished before are intact, rerun to resume.
    """
    run_dir = Path(run_dir)
    with RunLock(run_dir):
        try:
            return _run_locked(recipe, text, run_dir, force, trust_builder)
        except NetsculptError:
            raise
        except Exception as exc:  # a writer that is not ours (ONNX export, report plots) on a full disk
            reason = disk_full_reason(exc, run_dir)
            if reason is None:
                raise
            raise DiskFullError(
                f"the run in {run_dir} stopped: {reason} ({type(exc).__name__}: {str(exc)[:200]}). Stages "
                "finished before are intact; free some space and rerun the same command to resume."
            ) from None


def _run_locked(
    recipe: Recipe, text: str, run_dir: Path, force: bool, trust_builder: str | None
) -> dict[str, Any]:
    from netsculpt.io import load, save
    from netsculpt.measure import cpu_calibration

    started = time.perf_counter()
    check_recipe_change(run_dir, recipe, text, force, RANDOM_DIR)
    _remove_partial_writes(run_dir)
    if force:  # every stage starts over: a checkpoint left in one would be resumed for the new recipe,
        # the random-criterion control's included (its stages resume from their own checkpoints)
        clear_stages(run_dir, [*stage_dirs(run_dir).values(), run_dir / RANDOM_DIR])
    write_text(run_dir / "recipe.yaml", text)
    handler = _LogHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    console = Console(stderr=True)
    try:
        torch.manual_seed(recipe.seed)
        ctx = build_context(recipe, run_dir)
        ctx.trust_builder = trust_builder
        check_quantize_batches(recipe, ctx.train_loader)  # before any work, not after every other stage
        check_quantize_part(recipe, ctx.task)
        start_size = tuple(ctx.example.shape[2:])  # a compound stage changes it; the random control restarts
        meta = build_on_meta(recipe, ctx) if ctx.task is not None or _patterned(recipe) else None
        if ctx.task is not None and meta is not None:
            check_distill_heads(recipe, ctx.task, meta)
            check_quantize_detector(recipe, ctx.task, meta)
        check_sparsify_stages(recipe, meta, 0, f"{recipe.model.name} as built, before the baseline trains")
        plan = [("baseline", recipe.baseline)] + [(s.kind, s) for s in recipe.stages]
        records: list[dict[str, Any]] = []
        model: nn.Module | None = None
        for i, (kind, cfg) in enumerate(plan):
            out = run_dir / f"{i:02d}_{kind}"
            label = f"[{i + 1}/{len(plan)}] {kind}"
            if (out / "DONE").is_file():
                model = _load_stage(out, trust_builder)
                record = _read_record(out)
                guards.recheck(record, recipe.deploy)  # the margin may have been edited since
                if kind == "compound":  # later stages run at the resolution the stage chose
                    ctx.set_resolution(record["info"]["resolution"])
                console.print(f"{label}: done earlier, resumed from {out.name}")
                log.info("%s: resumed from %s", label, out)
            else:
                faults.point(f"stage:{kind}:start")
                console.rule(escape(f"{label}  {_describe(cfg)}"))  # '[random 1/3]' is not a style tag
                log.info("%s: %s", label, cfg.model_dump() if hasattr(cfg, "model_dump") else cfg)
                t0 = time.perf_counter()
                ctx.reset_random_state()
                stage_input = guards.snapshot(model) if guards.wants_guard(kind, recipe.deploy) else None
                stage_example = ctx.example  # a compound stage changes the input size
                model, info = STAGES[kind](ctx, cfg, model, out)
                model.eval()  # as _load_stage gives it: the next stage must not see where it came from
                seconds = time.perf_counter() - t0
                previous = records[-1]["metrics"] if records else None
                metrics = _measure(model, ctx, recipe.outputs.latency_runs, previous)
                if not _is_onnx(model):
                    save(model, out / "model", extra={"input_shape": list(ctx.example.shape), "stage": kind})
                    # the real file on disk (packed palettes included), not a float re-serialisation
                    metrics["size_bytes"] = (out / "model" / "model.safetensors").stat().st_size
                record = {
                    "index": i,
                    "kind": kind,
                    "dir": out.name,
                    "seconds": seconds,
                    "settings": cfg.model_dump(),
                    "metrics": metrics,
                    "info": info,
                }
                if guards.wants_guard(kind, recipe.deploy):
                    record["guard"] = guards.check_stage(
                        stage_input, model, ctx.example, recipe.deploy, input_example=stage_example
                    )
                    console.print(guards.describe(kind, record["guard"]))
                    log.info("%s: latency guard %s", label, record["guard"])
                    stage_input = None
                write_json(out / "stage.json", record)
                write_text(out / "DONE", "ok\n")  # last: the stage counts as finished only now
                faults.point(f"stage:{kind}:done")
                log.info(
                    "%s: accuracy %.4f, params %d, macs %d",
                    label,
                    metrics["accuracy"],
                    metrics["params"],
                    metrics["macs"],
                )
            if kind == "baseline":
                ctx.teacher = load(out / "model", trust_builder=trust_builder)
                if ctx.task is not None:  # a checkpoint baseline is only known now
                    check_distill_heads(recipe, ctx.task, model)
                    check_quantize_detector(recipe, ctx.task, model)
            records.append(record)
            guards.enforce(record, recipe.deploy)  # after the stage is saved: the work so far is kept
            if kind not in SHAPE_KEEPING:  # the baseline, a prune ...: the shapes a later sparsify stage sees
                check_sparsify_stages(recipe, model, i, f"the model {out.name} gave")
        # before the random control, which restarts at the first input size and loads its own models
        end_to_end = _side_by_side(recipe, ctx, model, records, start_size)
        compare = None
        if recipe.compare_random:
            compare = _compare_random(recipe, ctx, run_dir, console, start_size)
        results = _results(recipe, text, records, cpu_calibration().to_dict(), time.perf_counter() - started)
        results["task"] = task_record(ctx.task)
        if end_to_end is not None:
            results["latency_side_by_side"] = end_to_end
        if compare is not None:
            results["compare_random"] = compare
        validate_results(results, source=str(run_dir / "results.json"))  # catch a writer bug at the source
        write_json(run_dir / "results.json", results)
        if recipe.outputs.explain.enabled:  # before the report, which shows RUN_DIR/explain
            from netsculpt.explain.runner import explain_run

            console.rule("explain: interpretation maps, baseline vs final model")
            explain_run(run_dir, trust_builder=trust_builder, **recipe.outputs.explain.run_options())
        if recipe.outputs.report:
            _write_report(run_dir)
        return results
    finally:
        log.removeHandler(handler)
        handler.close()


class _LogHandler(logging.FileHandler):
    """``run.log``: best effort. On a full disk the next atomic write raises the clear error; logging's
    own "--- Logging error ---" traceback on stderr would only bury it."""

    def handleError(self, record: logging.LogRecord) -> None:
        return None


def _remove_partial_writes(run_dir: Path) -> None:
    """Delete temporary files a killed writer left (``.NAME.*.tmp`` from atomic_write): no reader ever
    opens them, and with the folder locked no live writer owns them."""
    import os

    for folder, _, files in os.walk(run_dir):  # does not follow symlinks out of the folder
        for name in files:
            tmp = Path(folder) / name
            if name.startswith(".") and name.endswith(".tmp") and tmp.is_file() and not tmp.is_symlink():
                tmp.unlink()


RANDOM_DIR = "compare_random"


def _compare_random(
    recipe: Recipe, ctx: RunContext, run_dir: Path, console: Console, start_size: tuple[int, ...]
) -> dict[str, Any]:
    """The recipe's stages again from the same baseline, each criterion replaced by ``random``, into
    ``RUN_DIR/compare_random/`` (resumable like the main stages); accuracy per stage. A compound stage
    of the main run changed the input size: the control starts again at the baseline's (``start_size``)
    and follows its own compound stages, so both sides are held to the same budget."""
    from netsculpt.io import load, save

    model, stages = (
        load(run_dir / "00_baseline" / "model", trust_builder=ctx.trust_builder),
        [],
    )  # a fresh copy: stages train in place
    if any(s.kind == "compound" for s in recipe.stages) and tuple(ctx.example.shape[2:]) != start_size:
        ctx.set_resolution(start_size)
    for i, cfg in enumerate(recipe.stages, start=1):
        kind = cfg.kind
        out = run_dir / RANDOM_DIR / f"{i:02d}_{kind}"
        label = f"[random {i}/{len(recipe.stages)}] {kind}"
        if (out / "DONE").is_file():
            model, record = _load_stage(out, ctx.trust_builder), _read_record(out)  # int8 artefacts too
            if kind == "compound":  # later control stages run at the size this one chose
                ctx.set_resolution(record["resolution"])
            console.print(f"{escape(label)}: done earlier, resumed from {RANDOM_DIR}/{out.name}")
        else:
            if "criterion" in type(cfg).model_fields:
                cfg = cfg.model_copy(update={"criterion": "random"})
            console.rule(escape(f"{label}  {_describe(cfg)}"))  # '[random 1/3]' is not a style tag
            out.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            ctx.reset_random_state()  # as for the main stages: the same result after a resume
            model, info = STAGES[kind](ctx, cfg, model, out)
            model.eval()
            seconds = time.perf_counter() - t0
            acc = ctx.evaluate(model)[0]
            record = {"index": i, "kind": kind, "dir": f"{RANDOM_DIR}/{out.name}", "accuracy": acc,
                      "seconds": seconds}  # fmt: skip
            if kind == "compound":
                record["resolution"] = info["resolution"]
            if not _is_onnx(model):
                save(model, out / "model", extra={"input_shape": list(ctx.example.shape), "stage": kind})
            write_json(out / "stage.json", record)
            write_text(out / "DONE", "ok\n")  # last, atomically, as for the main stages
            log.info("%s: accuracy %.4f", label, acc)
        stages.append(record)
    return {"criterion": "random", "stages": stages, "accuracy": stages[-1]["accuracy"] if stages else None}


def _load_stage(out: Path, trust_builder: str | None = None) -> nn.Module:
    from netsculpt.io import load
    from netsculpt.runtimes.artefacts import load_artefact

    # an int8 ONNX / OpenVINO IR / exported program from a quantize stage, or a detector with such a backbone
    artefact = load_artefact(out, trust_builder)
    return artefact if artefact is not None else load(out / "model", trust_builder=trust_builder)


def _side_by_side(
    recipe: Recipe, ctx: Any, final: nn.Module | None, records: list[dict[str, Any]], start_size: tuple
) -> dict[str, Any] | None:
    """The baseline and the final model timed side by side (alternating rounds, median), as the stage
    guards time a stage's input and output. The summary's latency ratio used to divide the baseline's time,
    taken right after it trained, by the final model's, taken minutes later: on a shared machine the two
    moments differ, and the demo printed 0.81-1.00x "faster" for a model its prune guard timed 1.7-2.0x
    faster. ``None`` when the guards are off or there is nothing to compare."""
    if not recipe.deploy.guard or final is None or ctx.teacher is None or len(records) < 2:
        return None
    base_example = ctx.example
    if tuple(ctx.example.shape[2:]) != start_size:  # a compound stage changed the input size
        base_example = torch.zeros(*ctx.example.shape[:2], *start_size, dtype=ctx.example.dtype)
    return guards.check_stage(ctx.teacher, final, ctx.example, recipe.deploy, input_example=base_example)


def _read_record(out: Path) -> dict[str, Any]:
    import json

    return json.loads((out / "stage.json").read_text())


def _patterned(recipe: Recipe) -> bool:
    return any(s.kind == "sparsify" and s.pattern != "unstructured" for s in recipe.stages)


def _describe(cfg: Any) -> str:
    if not hasattr(cfg, "model_dump"):
        return ""
    dump = cfg.model_dump(exclude_defaults=True)
    items = [f"{k}={v}" for k, v in dump.items() if v not in (None, {}, []) and k != "kind"]
    return ", ".join(items)


def _point(record: dict[str, Any]) -> dict[str, Any]:
    m = record["metrics"]
    keys = ("accuracy", "params", "macs", "size_bytes", "latency_ms", "peak_activation_bytes")
    return {"name": record["dir"], "stage": record["kind"], **{k: m.get(k) for k in keys}}


def _results(
    recipe: Recipe, text: str, records: list[dict[str, Any]], calibration: dict, seconds: float
) -> dict:
    first, last = records[0]["metrics"], records[-1]["metrics"]
    return {
        "version": SCHEMA_VERSION,
        "name": recipe.name,
        "recipe": text,
        "recipe_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "job": {"model": recipe.model.name, "data": recipe.data.name},
        "stages": records,
        "before": first,
        "after": last,
        "points": [_point(r) for r in records],
        "pareto": [],
        "calibration": calibration,
        "threads": torch.get_num_threads(),
        "wall_seconds": seconds,
    }


def _write_report(run_dir: Path) -> None:
    try:
        from netsculpt.report import write_report
    except ImportError:
        log.info("no report package: skipping report.html")
        return
    write_report(run_dir)
