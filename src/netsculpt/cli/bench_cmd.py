"""`netsculpt bench RUN_DIR | MODEL ...`: time models on every CPU runtime, threads and batch sizes.

For a run folder, every evaluated model of the run (each stage's model or int8 artefact) is timed and
plotted as accuracy against latency per runtime; ``RUN_DIR/bench.json`` and the report's runtimes page
are written. For models named on the command line, the table and latency plots only (no accuracy).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 1,2, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    from netsculpt.cli.common import parse_shape

    p = sub.add_parser(
        "bench",
        help="time a run's models (or given models) on torch, torch.compile, ONNX Runtime and OpenVINO",
        description="Latency median, throughput and peak memory per runtime x threads x batch; for a run "
        "folder also accuracy-vs-latency Pareto plots per runtime and the report's runtimes page.",
    )
    p.add_argument(
        "targets", nargs="+", metavar="RUN_DIR|MODEL", help="a run folder, or model names / folders"
    )
    p.add_argument(
        "--runtimes", default="torch,compile,onnxruntime,openvino", help="comma-separated runtimes"
    )
    p.add_argument(
        "--threads",
        dest="bench_threads",
        type=_ints,
        default=None,
        help="thread counts to time, e.g. 1,2 (default 1..nproc)",
    )
    p.add_argument("--batch", type=_ints, default=[1, 8], help="batch sizes, e.g. 1,8 (default 1,8)")
    p.add_argument("--runs", type=int, default=20, help="timed calls per runtime and configuration")
    p.add_argument(
        "--out",
        default=None,
        help="where to write bench.json and plots (default: the run folder, or ./bench)",
    )
    p.add_argument(
        "--input-shape", type=parse_shape, default=None, help="example input for MODEL, e.g. 1,3,224,224"
    )
    p.add_argument("--num-classes", type=int, default=None, help="classifier size (default: the model's)")
    p.add_argument("--in-channels", type=int, default=None, help="input channels (default: the model's)")
    p.add_argument(
        "--trust-builder", default=None, metavar="PKG.MOD:FN",
        help="for a saved model whose base netsculpt cannot build: the exact builder you allow to run",
    )  # fmt: skip
    p.set_defaults(func=run)


def _is_run(path: str) -> bool:
    return Path(path, "results.json").is_file()


def run_models(
    run_dir: Path, trust_builder: str | None = None
) -> list[tuple[str, Any, tuple[int, ...], float | None]]:
    """(name, model, input shape, test accuracy) of every stage of a run that left a model; a run of a
    model from your own builder needs the ``trust_builder`` it ran with."""
    from netsculpt.io import load, read_spec
    from netsculpt.report import load_results
    from netsculpt.runtimes.artefacts import load_artefact

    results = load_results(run_dir)
    stages = results.stages if isinstance(results.stages, list) else []
    out, shape = [], None
    for record in stages:
        folder = run_dir / (record.dir or "")
        if not record.dir or not folder.is_dir():
            continue
        accuracy = record.metrics.accuracy if record.metrics else None
        artefact = load_artefact(folder)
        if artefact is not None:
            out.append((record.dir, artefact, shape, accuracy))
        elif (folder / "model" / "netsculpt.json").is_file():
            shape = tuple(read_spec(folder / "model").get("extra", {}).get("input_shape") or shape or ())
            out.append((record.dir, load(folder / "model", trust_builder=trust_builder), shape, accuracy))
    return [(n, m, s, a) for n, m, s, a in out if s]


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from netsculpt.cli.common import example, load_model
    from netsculpt.errors import ConfigError
    from netsculpt.measure import cpu_calibration
    from netsculpt.runtimes import all_threads, bench_model, parse_runtimes

    runtimes = parse_runtimes(args.runtimes)
    threads = args.bench_threads or all_threads()
    if args.runs < 1:
        raise ConfigError(f"--runs must be >= 1, got {args.runs}")
    run_mode = len(args.targets) == 1 and _is_run(args.targets[0])
    if run_mode:
        run_dir = Path(args.targets[0])
        models = run_models(run_dir, args.trust_builder)
        if not models:
            raise ConfigError(f"{run_dir} has no stage model to time (no 0N_stage/model folders)")
        out = Path(args.out) if args.out else run_dir
    else:
        for target in args.targets:
            if _is_run(target):
                raise ConfigError(
                    f"{target} is a run folder: bench one run at a time (`netsculpt bench {target}`)"
                )
        models = []
        for target in args.targets:
            ns_args = argparse.Namespace(**{**vars(args), "model": target, "checkpoint": None})
            model, shape = load_model(ns_args)
            models.append((target, model, shape, None))
        out = Path(args.out or "bench")
    calibration = cpu_calibration()
    rows = []
    from netsculpt.progress import track

    for name, model, shape, accuracy in track(models, "benchmarking models"):
        x = example(tuple(shape))
        for row in bench_model(
            model, x, runtimes, name=name, threads=threads, batches=args.batch, runs=args.runs
        ):
            row.accuracy = accuracy
            rows.append(row)
    data = {
        "version": 1,
        "calibration": calibration.to_dict(),
        "runtimes": runtimes,
        "threads": threads,
        "batches": args.batch,
        "torch_threads": torch.get_num_threads(),
        "rows": [r.to_dict() for r in rows],
    }
    import sys

    _print_table(rows, calibration, Console(width=None if sys.stdout.isatty() else 120))
    written = _write(out, data, run_mode, run_dir if run_mode else None)
    for path in written:
        print(f"wrote {path}")
    return 0


def _print_table(rows: list[Any], calibration: Any, console: Any) -> None:
    """One row per timing; a runtime that could not run a model is listed below the table with why."""
    from rich.table import Table

    from netsculpt.measure.table import human_bytes, human_ms

    table = Table(title="netsculpt bench")
    for col in ("model", "runtime", "thr", "batch", "median", "spread", "samples/s", "peak mem", "accuracy"):
        table.add_column(col, justify="left" if col in ("model", "runtime") else "right", no_wrap=True)
    failed = []
    for r in rows:
        if r.error:
            failed.append(r)
            table.add_row(r.model, r.runtime, str(r.threads), str(r.batch), "not run", "", "", "", "")
            continue
        acc = f"{r.accuracy:.2%}" if r.accuracy is not None else "-"
        spread = f"{r.round_spread_pct:.0f}%" if r.round_spread_pct is not None else "-"
        peak = human_bytes(r.peak_memory_bytes) if r.peak_memory_bytes is not None else "n/a"  # see BenchRow
        table.add_row(r.model, r.runtime, str(r.threads), str(r.batch), human_ms(r.latency_ms), spread,
                      f"{r.throughput:,.0f}", peak, acc)  # fmt: skip
    table.caption = (
        f"{calibration}; latency per batch, median of alternating rounds; spread: the range of the rounds' "
        "medians (rows closer than it are within noise)"
    )
    console.print(table)
    reasons = dict.fromkeys(f"{r.model} on {r.runtime}: {r.error}" for r in failed)
    for line in reasons:
        console.print(f"not run: {line}", soft_wrap=True)


def _write(out: Path, data: dict[str, Any], run_mode: bool, run_dir: Path | None) -> list[Path]:
    from netsculpt.fileio import atomic_write, write_json
    from netsculpt.report.bench_plots import latency_figures, pareto_pngs

    out.mkdir(parents=True, exist_ok=True)
    written = [write_json(out / "bench.json", data)]
    figures = pareto_pngs(data["rows"]) if run_mode else latency_figures(data["rows"])
    for name, png in figures.items():
        written.append(atomic_write(out / "bench" / name, lambda tmp, png=png: tmp.write_bytes(png)))
    if run_mode and run_dir is not None and out.resolve() == run_dir.resolve():
        from netsculpt.report import write_report

        write_report(run_dir)
        written.append(run_dir / "runtimes.html")
    return written


__all__ = ["register", "run", "run_models"]
