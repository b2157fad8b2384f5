"""`make demo` over 5 seeds: wall time (with the CPU calibration, and scaled to 100 GFLOP/s) and accuracy.

Each seed runs the real command, ``netsculpt compress --set seed=S`` (the default recipe: baseline,
HRel prune, distillation with early stopping on held-out training digits, and the same stages with a
random criterion), in a fresh run folder, and reads its ``results.json``. The recipe was chosen on
held-out training digits (benchmarks/demo_recipe_val.py); this is the one measurement on the test split.
Bars (issue 15): <= 120 s at a calibration of ~100 GFLOP/s, accuracy loss <= 0.5 pp averaged over seeds.
Time "at 100" is wall time x (calibration / 100): the run is compute bound, so a machine at half the
calibration takes about twice as long.

    PYTHONPATH=src python benchmarks/demo_seeds.py --seeds 0,1,2   # run (parts: each seed ~1-2 min)
    PYTHONPATH=src python benchmarks/demo_seeds.py --table          # the table from the saved parts
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _calibration import print_calibration
from _compress import run_compress

RESULTS = Path(__file__).resolve().parent / "results" / "demo_seeds"
BAR_SECONDS, BAR_LOSS = 120.0, 0.5


def run_seed(seed: int, runs: Path) -> dict[str, Any]:
    out = runs / f"seed{seed}"
    if out.exists():
        raise SystemExit(f"{out} exists: remove it so the seed runs from scratch")
    before = print_calibration(f"seed {seed} start").matmul_gflops
    start = time.perf_counter()
    run_compress(out, sets=[f"seed={seed}"])
    wall = time.perf_counter() - start
    after = print_calibration(f"seed {seed} end").matmul_gflops
    results = json.loads((out / "results.json").read_text())
    stages = {s["kind"]: s for s in results["stages"]}
    compare = results.get("compare_random") or {}
    random_by_kind = {s["kind"]: s["accuracy"] for s in compare.get("stages", [])}
    distill_info = stages["distill"]["info"].get("early_stopping", {})
    row = {
        "seed": seed,
        "wall_seconds": wall,
        "calibration_gflops": statistics.fmean([before, after]),
        "stage_seconds": {s["kind"]: s["seconds"] for s in results["stages"]},
        "random_seconds": sum(s["seconds"] for s in compare.get("stages", [])),
        "baseline_acc": stages["baseline"]["metrics"]["accuracy"],
        "pruned_acc": stages["prune"]["metrics"]["accuracy"],
        "final_acc": results["after"]["accuracy"],
        "random_pruned_acc": random_by_kind.get("prune"),
        "random_final_acc": compare.get("accuracy"),
        "macs_ratio": results["after"]["macs"] / results["before"]["macs"],
        "params_ratio": results["after"]["params"] / results["before"]["params"],
        "best_epoch": distill_info.get("best_epoch"),
        "epochs_run": distill_info.get("epochs_run"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"seed{seed}.json").write_text(json.dumps(row, indent=1))
    return row


def table(rows: list[dict[str, Any]]) -> int:
    rows = sorted(rows, key=lambda r: r["seed"])
    print(
        "| seed | wall s | GFLOP/s | s at 100 | baseline | pruned | distilled | loss pp | random: pruned | "
        "random: distilled | best epoch / run |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        scaled = r["wall_seconds"] * r["calibration_gflops"] / 100
        loss = 100 * (r["baseline_acc"] - r["final_acc"])
        print(
            f"| {r['seed']} | {r['wall_seconds']:.0f} | {r['calibration_gflops']:.0f} | {scaled:.0f} | "
            f"{r['baseline_acc']:.2%} | {r['pruned_acc']:.2%} | {r['final_acc']:.2%} | {loss:.2f} | "
            f"{r['random_pruned_acc']:.2%} | {r['random_final_acc']:.2%} | "
            f"{r['best_epoch']} / {r['epochs_run']} |"
        )
    losses = [100 * (r["baseline_acc"] - r["final_acc"]) for r in rows]
    scaled = [r["wall_seconds"] * r["calibration_gflops"] / 100 for r in rows]
    gaps = [100 * (r["final_acc"] - r["random_final_acc"]) for r in rows]
    pruned_gaps = [100 * (r["pruned_acc"] - r["random_pruned_acc"]) for r in rows]
    wall = statistics.fmean(r["wall_seconds"] for r in rows)
    spread = statistics.stdev(losses) if len(losses) > 1 else 0.0
    print(
        f"\nseeds {len(rows)}: accuracy loss {statistics.fmean(losses):.2f} pp (sd {spread:.2f}, range "
        f"{min(losses):.2f} to {max(losses):.2f}); time at 100 GFLOP/s {statistics.fmean(scaled):.0f} s "
        f"(range {min(scaled):.0f}-{max(scaled):.0f}; wall {wall:.0f} s)"
    )
    print(
        f"HRel vs random criterion: {statistics.fmean(pruned_gaps):+.1f} pp right after pruning, "
        f"{statistics.fmean(gaps):+.2f} pp after distillation; MACs {rows[0]['macs_ratio']:.3f}x, "
        f"params {rows[0]['params_ratio']:.3f}x"
    )
    time_ok = statistics.fmean(scaled) <= BAR_SECONDS
    loss_ok = statistics.fmean(losses) <= BAR_LOSS
    print(
        f"bar time <= {BAR_SECONDS:.0f} s at 100 GFLOP/s: {'met' if time_ok else 'MISSED'}; "
        f"bar loss <= {BAR_LOSS} pp: {'met' if loss_ok else 'MISSED'}"
    )
    return 0 if time_ok and loss_ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--runs", default="runs/bench/demo_seeds", help="run folders (one per seed)")
    parser.add_argument("--table", action="store_true", help="only print the table of the saved seeds")
    args = parser.parse_args(argv)
    if not args.table:
        for seed in (int(s) for s in args.seeds.split(",")):
            run_seed(seed, Path(args.runs))
    rows = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("seed*.json"))]
    return table(rows)


if __name__ == "__main__":
    sys.exit(main())
