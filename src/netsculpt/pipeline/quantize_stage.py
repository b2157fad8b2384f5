"""The ``quantize`` recipe stage: int8 on one runtime, or ``runtime: auto`` (measure each, keep the fastest;
the float model itself when no int8 candidate beats it, unless ``if_slower: int8``, or when none is within
``tolerance_pp``, unless ``if_inaccurate: fail``).

Kept out of stages.py so the selection (candidates, held-out scoring, timing) has one home; the handler
there only calls :func:`run_quantize`. On ``task: detection`` the int8 part is the detector's backbone
(:mod:`netsculpt.weights.int8_detector`); the stage folder keeps the float detector in ``model/`` beside
the backbone's graph, and the detector is rebuilt from both (as a resumed run loads it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.pipeline.recipe import QuantizeStage
from netsculpt.runtimes.artefacts import load_artefact, remove_artefacts


def run_quantize(
    ctx: Any, cfg: QuantizeStage, model: nn.Module, out: Path
) -> tuple[nn.Module, dict[str, Any]]:
    from netsculpt.weights.int8_runtimes import calibration_batches
    from netsculpt.weights.int8_select import quantize_on
    from netsculpt.weights.quantize import Int8Config

    out.mkdir(parents=True, exist_ok=True)
    remove_artefacts(out)  # an unfinished attempt's artefact of another runtime would be loaded instead
    detector = getattr(ctx.task, "name", None) == "detection"
    if detector:  # refused before any export, naming the detectors int8 takes
        from netsculpt.weights.int8_detector import detector_backbone, detector_part

        detector_backbone(model)
        detector_part(model, cfg.part)
    if cfg.runtime != "auto":
        config = (
            Int8Config(calibration_batches=cfg.calib_batches, **cfg.options)
            if cfg.runtime == "onnxruntime"
            else None
        )
        if cfg.options and cfg.runtime != "onnxruntime":
            from netsculpt.errors import ConfigError

            raise ConfigError(
                f"quantize.options are ONNX Runtime's Int8Config fields; runtime {cfg.runtime} takes none"
            )
        if detector:
            from netsculpt.weights.int8_detector import quantize_detector

            int8 = quantize_detector(model, ctx.train_loader, out, runtime=cfg.runtime, part=cfg.part,
                                     calibration_batches=cfg.calib_batches, config=config,
                                     float_predictors=cfg.float_predictors)  # fmt: skip
            info = {"runtime": cfg.runtime, "int8": True, "part": int8.backbone.part}
            return _int8_detector(ctx, model, out), info
        calibration = calibration_batches(ctx.train_loader, cfg.calib_batches)
        quantize_on(cfg.runtime, model, ctx.example, calibration, out, config)
        return load_artefact(out), {"runtime": cfg.runtime, "int8": True}
    runs = ctx.recipe.outputs.latency_runs
    info = select_auto(model, ctx.example, ctx.train_loader, out, ctx.task, cfg, runs)
    if not info["int8"]:  # the candidates stay in candidates/ for a look; the runner saves this
        return model, info
    return (_int8_detector(ctx, model, out) if detector else load_artefact(out)), info


def select_auto(
    model: nn.Module, example: Any, loader: Any, out: Path, task: Any, cfg: QuantizeStage, runs: int
) -> dict[str, Any]:
    """``runtime: auto`` (the recipe stage and ``netsculpt quantize --runtime auto``): every runtime's int8
    candidate scored on held-out training batches and timed; the decision record says which model to keep,
    and a kept candidate's files are moved into ``out``. ``task`` None: classification."""
    from netsculpt.weights.int8_select import (
        INT8_RUNTIMES,
        against_float,
        compare_int8,
        none_within,
        pick_fastest,
        promote,
    )

    _, rows, float_acc = compare_int8(
        model,
        example,
        loader,
        out,
        task=task,
        runtimes=INT8_RUNTIMES,
        calib_batches=cfg.calib_batches,
        select_batches=cfg.select_batches,
        threads=torch.get_num_threads(),
        runs=runs,
        part=cfg.part,
    )
    inaccurate = none_within(rows, float_acc, cfg.tolerance_pp) if cfg.if_inaccurate == "float" else None
    best = None if inaccurate else pick_fastest(rows, float_acc, cfg.tolerance_pp)  # fail: raises
    decision = inaccurate or {
        "int8_runtime": best["runtime"],
        "int8_ms": best["latency_ms"],
        **against_float(best, rows, cfg.if_slower),
    }
    info = {
        "runtime": decision["int8_runtime"] if decision["keep"] == "int8" else None,
        "int8": decision["keep"] == "int8",
        "auto": True,
        "tolerance_pp": cfg.tolerance_pp,
        "metric": rows[0]["metric"],  # what float_heldout_accuracy and each heldout_accuracy measure
        "float_heldout_accuracy": float_acc,
        "candidates": rows,
        "decision": decision,
    }
    if getattr(task, "name", task) == "detection":
        from netsculpt.weights.int8_detector import detector_part

        info["part"] = detector_part(model, cfg.part)
    if info["int8"]:
        promote(out / "candidates" / decision["int8_runtime"], out)
    return info


def _int8_detector(ctx: Any, model: nn.Module, out: Path) -> nn.Module:
    """The stage's int8 detector as a resumed run loads it: the float detector is saved in ``out/model``
    (the runner saves no artefact) and the detector rebuilt around the backbone's graph in ``out``."""
    from netsculpt.io import save

    save(model, out / "model", extra={"input_shape": list(ctx.example.shape), "stage": "quantize"})
    return load_artefact(out, ctx.trust_builder)


def check_quantize_batches(recipe: Any, train_loader: Any) -> None:
    """Refuse, before any stage runs, a ``runtime: auto`` quantize stage whose calibration batches leave
    none of the training split to score the candidates on (it failed only after every other stage)."""
    try:
        batches = len(train_loader)
    except TypeError:  # an iterable loader: its length is learnt only by running it
        return
    for i, stage in enumerate(recipe.stages):
        if stage.kind != "quantize" or stage.runtime != "auto" or batches > stage.calib_batches:
            continue
        from netsculpt.errors import ConfigError

        size = getattr(train_loader, "batch_size", None)
        at = f" of {size} images" if size else ""
        raise ConfigError(
            f"stages.{i}.quantize: runtime auto calibrates on calib_batches={stage.calib_batches} training "
            f"batches and scores its candidates on the batches after them (select_batches="
            f"{stage.select_batches}), but the training split gives {batches} batch(es){at}: set "
            f"calib_batches below {batches} (e.g. --set stages.{i}.quantize.calib_batches="
            f"{max(1, batches // 2)}), a smaller data.batch_size or a larger data.limit"
        )


def check_quantize_part(recipe: Any, task: Any) -> None:
    """Refuse, before any work, ``part`` on a quantize stage of a task without detector parts (it would
    be ignored: a classifier or segmenter goes int8 whole)."""
    if getattr(task, "name", None) == "detection":
        return
    for i, stage in enumerate(recipe.stages):
        if stage.kind != "quantize":
            continue
        for key in ("part", "float_predictors"):
            if getattr(stage, key) is not None:
                from netsculpt.errors import ConfigError

                raise ConfigError(
                    f"stages.{i} (quantize): {key}: {getattr(stage, key)} chooses a detector's int8 part "
                    f"(task: detection); a classifier or segmenter goes int8 whole: remove {key}"
                )


def check_quantize_detector(recipe: Any, task: Any, model: nn.Module) -> None:
    """Refuse, before any stage trains, a quantize stage on a detector int8 cannot take (no
    ``transform`` + tensor-in ``backbone``, or ``part: backbone+head`` without a ``head``): it failed
    only after the baseline and every other stage."""
    if getattr(task, "name", None) != "detection":
        return
    from netsculpt.errors import ConfigError
    from netsculpt.weights.int8_detector import detector_backbone, detector_part

    for i, stage in enumerate(recipe.stages):
        if stage.kind == "quantize":
            try:
                detector_backbone(model)
                detector_part(model, stage.part)
            except ConfigError as exc:
                raise ConfigError(f"stages.{i} (quantize): {exc}") from None
            return
