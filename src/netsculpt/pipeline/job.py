"""The main job: baseline -> prune -> fine-tune -> measure, resumable stage by stage.

Each stage writes its artifacts into the run directory and a marker file last; rerunning the same job
skips finished stages, so an interrupted run continues where it stopped instead of starting over.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from netsculpt.fileio import write_json
from netsculpt.progress import info

RESULTS_VERSION = 1


@dataclass
class CompressJob:
    """Everything the default job needs; plain data so it round-trips to JSON (results.json)."""

    model: str = "lenet5"
    data: str = "mnist5k"
    resize: int | None = None
    channels: int | None = None
    limit: int | None = None
    train_preset: str = "lenet5_mnist5k"
    train_epochs: int | None = None
    criterion: str = "l1"
    ratio: float = 0.5
    finetune_epochs: int = 6
    finetune_lr: float = 0.01
    seed: int = 0
    latency_runs: int = 30
    options: dict[str, Any] = field(default_factory=dict)


def _loaders(job: CompressJob, batch_size: int, augment: bool):
    from netsculpt.data import make_loaders

    return make_loaders(
        job.data,
        batch_size=batch_size,
        resize=job.resize,
        channels=job.channels,
        limit=job.limit,
        augment=augment,
        seed=job.seed,
    )


def _done(run: Path, stage: str) -> bool:
    return (run / stage / "DONE").is_file()


def _finish(run: Path, stage: str, payload: dict[str, Any]) -> None:
    write_json(run / stage / "stage.json", payload)
    (run / stage / "DONE").write_text("ok\n")


def run_job(job: CompressJob, run_dir: str | Path) -> dict[str, Any]:
    """Run (or resume) ``job`` in ``run_dir``; returns the results written to results.json."""
    from netsculpt.data import dataset_info
    from netsculpt.io import load, save
    from netsculpt.measure import cpu_calibration, measure
    from netsculpt.models import create_model
    from netsculpt.prune import apply_plan as replay
    from netsculpt.prune import plan_pruning
    from netsculpt.train import TrainConfig, evaluate, train

    started = time.perf_counter()
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    write_json(run / "job.json", dataclasses.asdict(job))
    data_info = dataset_info(job.data, resize=job.resize, channels=job.channels)
    shape = (1, data_info.in_channels, *data_info.image_size)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    # 1. baseline
    config = TrainConfig.preset(job.train_preset, seed=job.seed)
    if job.train_epochs:  # a shorter run keeps at least one epoch after warm-up
        config = config.replace(
            epochs=job.train_epochs, warmup_epochs=min(config.warmup_epochs, job.train_epochs - 1)
        )
    train_loader, test_loader = _loaders(job, config.batch_size, config.augment)
    if not _done(run, "baseline"):
        info(f"[bold]baseline[/]: training {job.model} on {job.data} ({config.epochs} epochs)")
        model = create_model(
            job.model, num_classes=data_info.num_classes, in_channels=data_info.in_channels, **job.options
        )
        result = train(
            model, train_loader, test_loader, config, out_dir=run / "baseline" / "checkpoints", resume=True
        )
        save(model, run / "baseline" / "model", extra={"input_shape": list(shape)})
        _finish(run, "baseline", {"accuracy": result.final_acc, "history": result.history})
    base = load(run / "baseline" / "model")

    # 2. prune
    if not _done(run, "prune"):
        info(f"[bold]prune[/]: {job.criterion}, ratio {job.ratio}")
        plan, graph = plan_pruning(base, x, criterion=job.criterion, ratio=job.ratio, data=train_loader)
        pruned = replay(base, plan, x, graph=graph)
        acc, _ = evaluate(pruned, test_loader)
        save(pruned, run / "prune" / "model", extra={"input_shape": list(shape)})
        plan.save(run / "prune" / "plan.json")
        _finish(run, "prune", {"accuracy_before_finetune": acc, "plan": plan.to_dict()})

    # 3. fine-tune
    if not _done(run, "finetune"):
        info(f"[bold]fine-tune[/]: {job.finetune_epochs} epochs")
        pruned = load(run / "prune" / "model")
        ft = TrainConfig.preset(
            job.train_preset, epochs=job.finetune_epochs, lr=job.finetune_lr, warmup_epochs=0, seed=job.seed
        )
        result = train(
            pruned, train_loader, test_loader, ft, out_dir=run / "finetune" / "checkpoints", resume=True
        )
        save(pruned, run / "finetune" / "model", extra={"input_shape": list(shape)})
        _finish(run, "finetune", {"accuracy": result.final_acc, "history": result.history})
    final = load(run / "finetune" / "model")

    # 4. measure, side by side in one run
    info("[bold]measure[/]: before and after")
    calibration = cpu_calibration()
    before = measure(base, x, runs=job.latency_runs)
    after = measure(final, x, runs=job.latency_runs)
    acc_before, _ = evaluate(base, test_loader)
    acc_after, _ = evaluate(final, test_loader)
    results = {
        "version": RESULTS_VERSION,
        "job": dataclasses.asdict(job),
        "before": {"accuracy": acc_before, **before.to_dict()},
        "after": {"accuracy": acc_after, **after.to_dict()},
        "stages": {
            s: json.loads((run / s / "stage.json").read_text()) for s in ("baseline", "prune", "finetune")
        },
        "calibration": calibration.to_dict(),
        "wall_seconds": time.perf_counter() - started,
    }
    write_json(run / "results.json", results)
    return results


def print_summary(results: dict[str, Any], console: Console | None = None) -> None:
    """The table a person reads at the end: accuracy, params, MACs, size, latency — before, after, ratio."""
    from rich.table import Table

    console = console or Console()
    b, a = results["before"], results["after"]
    table = Table(title=f"{results['job']['model']} on {results['job']['data']}")
    for col in ("", "before", "after", "ratio"):
        table.add_column(col, justify="right")
    rows = [
        (
            "accuracy",
            f"{b['accuracy']:.2%}",
            f"{a['accuracy']:.2%}",
            f"{(a['accuracy'] - b['accuracy']) * 100:+.2f} pp",
        ),
        ("params", f"{b['params']:,}", f"{a['params']:,}", f"{b['params'] / a['params']:.2f}x smaller"),
        ("MACs", f"{b['macs']:,}", f"{a['macs']:,}", f"{b['macs'] / a['macs']:.2f}x fewer"),
        (
            "size on disk",
            f"{b['size_bytes']:,} B",
            f"{a['size_bytes']:,} B",
            f"{b['size_bytes'] / a['size_bytes']:.2f}x",
        ),
    ]
    if b.get("latency_ms") and a.get("latency_ms"):
        rows.append(
            (
                "latency (batch 1)",
                f"{b['latency_ms']:.3f} ms",
                f"{a['latency_ms']:.3f} ms",
                f"{b['latency_ms'] / a['latency_ms']:.2f}x faster",
            )
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    cal = results["calibration"]
    console.print(
        f"wall time {results['wall_seconds']:.1f} s · CPU calibration: "
        f"{cal['matmul_gflops']:.1f} GFLOP/s matmul, "
        f"{cal['python_loop_ms']:.1f} ms Python loop (compare timings across machines with these)"
    )
