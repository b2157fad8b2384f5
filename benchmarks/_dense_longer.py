"""``--part longer6-det`` of ``benchmarks/detection.py``: every row with 6x the fine-tune, maybe distilled.

The 125-step fine-tune of the main table leaves the pruned detector ~6 points short (issue 14 section 6);
l1 with 3x recovers most of that. This part gives fisher, l1 and the unpruned control the SAME longer
fine-tune (``PASSES`` passes over the fine-tune canvases, same lr as the main table) with the same loss.
Whether that loss distils the unpruned detector (netsculpt's dense-task distillation: the pruned FCOS
matches the unpruned one's raw head outputs, ``alpha`` weighting the soft term against the task loss) is
decided on the 200 held-out *training* canvases only: the l1 row with the 1x fine-tune, distilled, against
the same row undistilled (already in the cache), before any 6x row runs. The KD setting itself
(``KD_ALPHA``, ``KD_T``) is fixed in advance, not tuned. Rows are resumable (a checkpoint per pass).
"""

from __future__ import annotations

import json
from pathlib import Path

from _dense_prune import Setup, _read, _write, row_line, run_row
from torch import nn

from netsculpt.tasks import get_task
from netsculpt.train.distill import DistillConfig

PASSES = 6
KD_ALPHA, KD_T = 0.5, 1.0  # fixed in advance (detection head matching is BCE/MSE, T=1 keeps it plain)
METHODS = ("l1", "fisher", "none")  # l1 first: the better row of the 1x table


class KdStep:
    """The fine-tune loss of one (pruned) student: ``loss`` on a batch; ``learnable`` (its hint
    adapters) is what ``fit`` trains beside the student."""

    def __init__(self, loss) -> None:
        self.loss, self.learnable = loss, loss.learnable

    def __call__(self, model: nn.Module, batch) -> object:
        images, targets = batch
        return self.loss(model, images, targets)[0]


def kd_step(setup: Setup, teacher: nn.Module, hints: list[str] | None = None):
    """A ``run_row`` step factory: the fine-tune loss distils ``teacher`` into the model being tuned;
    ``hints``: layer names (e.g. FPN outputs) whose features the student also matches, through adapters."""
    task = get_task(setup.task, num_classes=11)

    def make(student: nn.Module) -> KdStep:
        config = DistillConfig(temperature=KD_T, alpha=KD_ALPHA, hints=list(hints or []))
        extra = {"student": student, "example_inputs": setup.example[0]} if hints else {}
        return KdStep(task.distillation_loss(teacher, config, **extra))

    return make


def choose_kd(setup: Setup, base: nn.Module, cache: Path, lr: float) -> dict:
    """Distil or not, on the validation canvases (l1 row, 1x fine-tune); cached in ``{kind}_longer6.json``."""
    path = cache / f"{setup.kind}_longer6.json"
    summary = _read(path)
    if summary is not None:
        return summary
    metric = setup.metric
    plain = run_row(setup, base, "l1", lr, cache, test=False)
    kd = run_row(setup, base, "l1", lr, cache, test=False, step=kd_step(setup, base), suffix="_kd")
    use_kd = kd["val_after"][metric] > plain["val_after"][metric]
    summary = {
        "passes": PASSES,
        "lr": lr,
        "kd": {"alpha": KD_ALPHA, "temperature": KD_T} if use_kd else None,
        "selection_val_1x": {"plain": plain["val_after"][metric], "kd": kd["val_after"][metric]},
    }
    print(f"[{setup.kind} longer6] {json.dumps(summary)}", flush=True)
    _write(path, summary)
    return summary


def longer6_part(
    setup: Setup, base: nn.Module, cache: Path, methods: tuple[str, ...] = METHODS, seed: int = 0
) -> None:
    """The 6x rows; ``seed`` > 0 reruns them with another fine-tune draw (shuffling), same setting."""
    lr = _read(cache / f"{setup.kind}_prune.json")["chosen_lr"]
    summary = choose_kd(setup, base, cache, lr)
    kd = summary["kd"] is not None
    for method in methods:
        run_row(
            setup,
            base,
            method,
            lr,
            cache,
            test=True,
            passes=PASSES,
            step=kd_step(setup, base) if kd else None,
            suffix="_kd" if kd else "",
            seed=seed,
        )


def kd6_part(setup: Setup, base: nn.Module, cache: Path, methods: tuple[str, ...] = METHODS) -> None:
    """``--part kd6-det``: the distilled 6x fine-tune, against the plain 6x one on the validation canvases
    (l1 row, val only). Only when distillation wins there do the rows get the test canvases."""
    lr = _read(cache / f"{setup.kind}_prune.json")["chosen_lr"]
    plain = _read(cache / f"{setup.kind}_l1_lr{lr:g}_x{PASSES}.json")
    if plain is None or "val_after" not in plain:
        raise SystemExit(f"run --part longer6-{setup.kind} --methods l1 first: kd6 compares against it")
    kd = run_row(
        setup, base, "l1", lr, cache, test=False, passes=PASSES, step=kd_step(setup, base), suffix="_kd"
    )
    metric = setup.metric
    summary = {
        "passes": PASSES,
        "lr": lr,
        "kd": {"alpha": KD_ALPHA, "temperature": KD_T},
        "selection_val_6x": {"plain": plain["val_after"][metric], "kd": kd["val_after"][metric]},
    }
    summary["use_kd"] = summary["selection_val_6x"]["kd"] > summary["selection_val_6x"]["plain"]
    print(f"[{setup.kind} kd6] {json.dumps(summary)}", flush=True)
    _write(cache / f"{setup.kind}_kd6.json", summary)
    if summary["use_kd"]:
        for method in methods:
            run_row(
                setup,
                base,
                method,
                lr,
                cache,
                test=True,
                passes=PASSES,
                step=kd_step(setup, base),
                suffix="_kd",
            )


def _rows(kind: str, cache: Path, lr: float, tag: str, label: str, metric: str, ref: float) -> dict:
    rows = {m: _read(cache / f"{kind}_{m}_lr{lr:g}_{tag}.json") for m in METHODS}
    tp = _read(cache / f"{kind}_tp_lr{lr:g}_{tag}.json")  # Torch-Pruning's row, when run with this budget
    if tp is not None:
        rows["tp"] = tp
    drops = {}
    for method, row in rows.items():
        name = {"none": "control (unpruned)", "tp": "Torch-Pruning 1.6.1"}.get(method, f"netsculpt {method}")
        if row is None or "test_after" not in row:
            print(f"    {name}: not run yet")
            continue
        drops[method] = 100 * (ref - row["test_after"][metric])
        print("    " + row_line(name, row, metric, label, ref))
    pruned = {m: d for m, d in drops.items() if m in ("l1", "fisher")}
    if pruned:
        best = min(pruned, key=pruned.get)
        verdict = "MET" if pruned[best] <= 1.0 else "MISSED"
        print(f"    {verdict} ({tag}): better row ({best}) drops {pruned[best]:.2f} points (bar <= 1.0)")
        if "none" in drops:
            gap = pruned[best] - drops["none"]
            print(f"    against the control given the same {tag} fine-tune, {best} is {gap:.2f} points lower")
    return rows


def longer6_report(kind: str, cache: Path, label: str, metric: str, ref: float, record: dict) -> None:
    """Lines for the text report: the 6x rows (plain, then distilled if it won on val) and the bar."""
    summary = _read(cache / f"{kind}_longer6.json")
    if summary is None:
        return
    suffix = "_kd" if summary["kd"] else ""
    how = f"distilled from the unpruned model ({summary['kd']})" if summary["kd"] else "not distilled"
    print(
        f"\n  equal {summary['passes']}x fine-tune for every row ({how}; chosen on val, l1 row, 1x: "
        f"{summary['selection_val_1x']})"
    )
    rows = _rows(kind, cache, summary["lr"], f"x{summary['passes']}{suffix}", label, metric, ref)
    record[kind]["longer6"] = {"summary": summary, "rows": rows}
    _draws(kind, cache, summary, suffix, label, metric, ref, record)
    kd6 = _read(cache / f"{kind}_kd6.json")
    if kd6 is None:
        return
    print(
        f"  distilled {kd6['passes']}x ({kd6['kd']}) vs plain {kd6['passes']}x on val (l1 row): "
        f"{kd6['selection_val_6x']} -> "
        + ("distilled rows:" if kd6["use_kd"] else "plain kept (no test rows)")
    )
    record[kind]["kd6"] = {"summary": kd6}
    if kd6["use_kd"]:
        record[kind]["kd6"]["rows"] = _rows(
            kind, cache, kd6["lr"], f"x{kd6['passes']}_kd", label, metric, ref
        )


def _draws(
    kind: str, cache: Path, summary: dict, suffix: str, label: str, metric: str, ref: float, record: dict
):
    """Other fine-tune draws (``--seed N``) of the same 6x rows, and the mean drop per row over all draws."""
    tag = f"x{summary['passes']}{suffix}"
    draws = [0]
    for seed in range(1, 5):
        if not any((cache / f"{kind}_{m}_lr{summary['lr']:g}_{tag}_s{seed}.json").exists() for m in METHODS):
            continue
        print(f"  the same 6x rows, another fine-tune draw (--seed {seed}, shuffling):")
        rows = _rows(kind, cache, summary["lr"], f"{tag}_s{seed}", label, metric, ref)
        record[kind]["longer6"][f"rows_seed{seed}"] = rows
        draws.append(seed)
    if len(draws) < 2:
        return
    for method in METHODS:
        values = []
        for seed in draws:
            draw = f"_s{seed}" if seed else ""
            row = _read(cache / f"{kind}_{method}_lr{summary['lr']:g}_{tag}{draw}.json")
            if row is not None and "test_after" in row:
                values.append(row["test_after"][metric])
        if len(values) == len(draws):
            mean = sum(values) / len(values)
            print(
                f"    {method}: mean over {len(values)} draws test {label} {mean:.4f} "
                f"(drop {100 * (ref - mean):+.2f} pt; draws {[round(v, 4) for v in values]})"
            )
