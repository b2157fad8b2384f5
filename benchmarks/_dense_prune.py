"""The prune parts of ``benchmarks/detection.py``: fisher / l1 / Torch-Pruning rows with fine-tuning.

Every row prunes the trained model to <= 0.5x MACs (counted by ``netsculpt.measure.count_macs`` on the
whole model at batch 1, the same count for every tool), is scored on the test canvases before and after
the same fine-tune, and on the held-out validation canvases. The fine-tune learning rate is chosen on
the validation canvases only (canvases drawn from the *training* digits with another seed, so neither
in the training canvases nor made of any test digit), on the ``l1`` row; ``fisher`` and Torch-Pruning
then get that same budget. A row whose pruning call fails records the error instead of numbers.
Each row is a JSON file in the cache, so an interrupted part resumes.

Torch-Pruning 1.6.1 is driven as its torchvision example does (``examples/torchvision_models``): the
example input is the detector's list of images, BatchNorm rather than FrozenBatchNorm2d (which the
example says TP does not support), and the layers that emit network outputs in ``ignored_layers``
(FCOS ``cls_logits`` / ``bbox_reg`` / ``bbox_ctrness``; for the segmenter the two LR-ASPP classifier
convs, which its example leaves unprotected, so TP would cut output classes). On FCOS that is not
enough: TP keeps ``GroupNorm(32, 64)``'s group count and halves every group, and the ``GroupNorm(32,
32)`` towers it leaves fail on the 1x1 P7 map of a 128 px image; the run records that error and, as
TP's SSD example does, ignores the whole head instead. Its uniform ``pruning_ratio`` is the smallest
(by bisection) whose model meets the MACs budget, or 0.5 when none does (the budget miss is printed).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from _dense_models import fit
from torch import nn

import netsculpt as ns
from netsculpt.measure import count_macs
from netsculpt.tasks import get_task

MACS_BUDGET = 0.5


@dataclass
class Setup:
    """One model's benchmark: how to load it, feed it, train it and score it."""

    kind: str  # "det" or "seg"
    task: str  # netsculpt task name
    metric: str  # headline metric key of task.evaluate
    build: Callable[[], nn.Module]
    example: tuple  # example inputs for netsculpt (batch 1)
    tp_example: Any  # example inputs as Torch-Pruning takes them
    tp_ignored: Callable[[nn.Module], list[nn.Module]]  # what the TP row passes as ignored_layers
    tp_outputs: Callable[[nn.Module], list[nn.Module]] | None  # only the output layers (TP's own example)
    finetune: Any  # loaders; finetune: a fixed subset of the training canvases, one pass per row
    calib: Any
    val: Any
    test: Any
    step: Callable
    ft_lrs: tuple[float, ...]
    calib_batches: int = 16  # batches of the (unshuffled) training canvases the gradient criteria see


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _write(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def macs_of(model: nn.Module, example: tuple) -> int:
    return count_macs(model.eval(), example)[0]


def prune_netsculpt(setup: Setup, base: nn.Module, criterion: str) -> nn.Module:
    return ns.prune(
        base.eval(),
        setup.example,
        criterion=criterion,
        target=ns.Target(macs=MACS_BUDGET),
        data=setup.calib,
        calib_batches=setup.calib_batches,
        task=setup.task,
    )


def _tp_once(setup: Setup, base: nn.Module, ratio: float, ignored=None) -> nn.Module:
    import torch_pruning as tp

    model = copy.deepcopy(base).eval()
    pruner = tp.pruner.MetaPruner(
        model,
        setup.tp_example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio,
        ignored_layers=(ignored or setup.tp_ignored)(model),
    )
    pruner.step()
    return model.eval()


def tp_documented_check(setup: Setup, base: nn.Module) -> str | None:
    """Torch-Pruning with only the output layers ignored (its FCOS example): does the result run?"""
    try:
        macs_of(_tp_once(setup, base, 0.5, setup.tp_outputs), setup.example)
    except Exception as exc:  # the pruned model fails on the example: that is the finding
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    return None


def prune_torch_pruning(setup: Setup, base: nn.Module) -> tuple[nn.Module, dict]:
    """The smallest uniform ratio (bisection on [0, 0.9]) meeting the MACs budget, else ratio 0.5."""
    full = macs_of(base, setup.example)
    lo, hi, best = 0.0, 0.9, None
    for _ in range(6):
        mid = (lo + hi) / 2
        model = _tp_once(setup, base, mid)
        if macs_of(model, setup.example) <= MACS_BUDGET * full:
            hi, best = mid, model
        else:
            lo = mid
    info = {"tp_documented_failure": tp_documented_check(setup, base) if setup.tp_outputs else None}
    if best is None:
        reach = macs_of(_tp_once(setup, base, 0.9), setup.example) / full
        print(f"[{setup.kind} tp] budget not reachable: ratio 0.9 gives {reach:.3f}x MACs", flush=True)
        return _tp_once(setup, base, 0.5), info | {"tp_uniform_ratio": 0.5, "tp_macs_at_0.9": round(reach, 4)}
    return best, info | {"tp_uniform_ratio": round(hi, 4)}


def evaluate(setup: Setup, model: nn.Module, loader) -> dict:
    task = get_task(setup.task, num_classes=11)
    return {k: round(float(v), 4) for k, v in task.evaluate(model, loader).items()}


def _finetune(
    setup: Setup,
    model: nn.Module,
    lr: float,
    ckpt: Path,
    label: str,
    passes: int = 1,
    step=None,
    seed: int = 0,
) -> float:
    import time

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    warm = max(1, passes * len(setup.finetune) // 10)
    fit(
        model,
        setup.finetune,
        step or setup.step,
        epochs=passes,
        lr=lr,
        ckpt=ckpt,
        label=label,
        warmup=warm,
        seed=seed,
    )
    return time.perf_counter() - t0


def make_pruned(setup: Setup, base: nn.Module, method: str) -> tuple[nn.Module, dict]:
    if method == "tp":
        return prune_torch_pruning(setup, base)
    if method == "none":  # the control: the unpruned model given the same fine-tune
        return copy.deepcopy(base), {}
    return prune_netsculpt(setup, base, method), {}


def run_row(
    setup: Setup,
    base: nn.Module,
    method: str,
    lr: float,
    cache: Path,
    *,
    test: bool,
    passes: int = 1,
    step: Callable[[nn.Module], Callable] | None = None,
    suffix: str = "",
    seed: int = 0,
) -> dict:
    """Prune, score before, fine-tune at ``lr``, score after (val always; test only when ``test``).
    ``step(model)``, when given, builds the fine-tune loss for that (pruned) model, e.g. distillation."""
    tag = f"{setup.kind}_{method}_lr{lr:g}" + (f"_x{passes}" if passes > 1 else "") + suffix
    tag += f"_s{seed}" if seed else ""
    path = cache / f"{tag}.json"
    record = _read(path)
    if record is not None and (record.get("test_after") or not test):
        return record
    model, extra = make_pruned(setup, base, method)
    if record is None:
        full = macs_of(base, setup.example)
        record = {
            "method": method,
            "lr": lr,
            "macs_ratio": round(macs_of(model, setup.example) / full, 4),
            "params": sum(p.numel() for p in model.parameters()),
            **extra,
            "val_before": evaluate(setup, model, setup.val),
        }
    if test and "test_before" not in record:
        record["test_before"] = evaluate(setup, model, setup.test)
    print(f"[{setup.kind} {method}] before fine-tune: {record}", flush=True)
    ckpt = cache / f"{tag}_ft.ckpt"
    seconds = _finetune(setup, model, lr, ckpt, f"{tag} ft", passes, step(model) if step else None, seed)
    record["finetune_s"] = record.get("finetune_s") or round(seconds)
    if "val_after" not in record:
        record["val_after"] = evaluate(setup, model, setup.val)
    if test:
        record["test_after"] = evaluate(setup, model, setup.test)
    print(f"[{setup.kind} {method}] after fine-tune: {record}", flush=True)
    _write(path, record)
    return record


SELECT_ON = "l1"  # the row whose validation score picks the fine-tune lr for every row


def _row_or_error(setup: Setup, base: nn.Module, method: str, lr: float, cache: Path) -> dict:
    try:
        return run_row(setup, base, method, lr, cache, test=True)
    except Exception as exc:  # a tool that cannot prune this model is a result, reported as such
        print(f"[{setup.kind} {method}] FAILED: {type(exc).__name__}: {exc}", flush=True)
        return {"method": method, "lr": lr, "error": f"{type(exc).__name__}: {exc}"}


def prune_part(setup: Setup, base: nn.Module, cache: Path) -> dict:
    """All rows of one model; the fine-tune lr is picked on the l1 row's validation score."""
    metric = setup.metric
    trials = {lr: run_row(setup, base, SELECT_ON, lr, cache, test=False) for lr in setup.ft_lrs}
    lr = max(setup.ft_lrs, key=lambda r: trials[r]["val_after"][metric])
    print(
        f"[{setup.kind}] fine-tune lr {lr:g} chosen on validation: "
        + ", ".join(f"{r:g} -> {t['val_after'][metric]}" for r, t in trials.items()),
        flush=True,
    )
    rows = {m: _row_or_error(setup, base, m, lr, cache) for m in ("l1", "fisher", "tp")}
    summary = {
        "chosen_lr": lr,
        "selected_on": SELECT_ON,
        "lr_trials": {f"{r:g}": t["val_after"][metric] for r, t in trials.items()},
        "rows": rows,
    }
    _write(cache / f"{setup.kind}_prune.json", summary)
    return summary


def control_part(setup: Setup, base: nn.Module, cache: Path) -> dict:
    """The unpruned model fine-tuned with the rows' budget and lr: what a pruned row would reach if
    pruning cost nothing (the base models are short of convergence, so fine-tuning alone moves them)."""
    summary = _read(cache / f"{setup.kind}_prune.json")
    if summary is None:
        raise SystemExit(f"run --part prune-{setup.kind} first: the control uses its chosen lr")
    return run_row(setup, base, "none", summary["chosen_lr"], cache, test=True)


def longer_part(setup: Setup, base: nn.Module, cache: Path, passes: int = 3) -> dict:
    """Outside the equal-budget table: the l1 row with ``passes`` times the fine-tune, at the chosen lr,
    to show how much of the drop is the short budget."""
    lr = _read(cache / f"{setup.kind}_prune.json")["chosen_lr"]
    return run_row(setup, base, "l1", lr, cache, test=True, passes=passes)


def row_line(name: str, row: dict, metric: str, label: str, ref: float) -> str:
    """One fine-tuned row of a results table: MACs, test score, drop against ``ref``, val score, time."""
    after = row["test_after"][metric]
    return (
        f"{name:20s} MACs {row['macs_ratio']:.3f}  test {label} {after:.4f}  drop "
        f"{100 * (ref - after):+.2f} pt  val {row['val_after'][metric]:.4f}  ({row['finetune_s']} s)"
    )
