"""Do latency targets land on models no test names? Predicted vs measured latency ratio after
``ns.plan_pruning(model, x, target=Target(latency=t), runtime=rt)`` on torchvision and timm models.

Each model (random init, batch 1, one thread, thread CPU clock) gets a LatencyModel per runtime (its
table saved, so a rerun reuses it), is pruned to targets 0.5 and 0.7 (default ``round_to="hw"``), and
the original and pruned models are then measured end to end in alternating rounds; the measured ratio is
the median over rounds of pruned / original. A CPU calibration is printed beside every row. Results are
appended to a JSON-lines file per model, so the script resumes where it stopped.

    PYTHONPATH=src:benchmarks python benchmarks/latency_targets.py --tag before [--models ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import traceback
import warnings
from pathlib import Path

import torch
from _calibration import print_calibration

import netsculpt as ns
from netsculpt.measure.latency_model import LatencyModel

MODELS = (
    "mobilenet_v3_small",
    "regnet_x_400mf",
    "efficientnet_b0",
    "shufflenet_v2_x1_0",
    "convnext_atto",
    "ghostnet_100",
)
RUNTIMES = ("torch", "onnxruntime")
TARGETS = (0.5, 0.7)
RESULTS = Path(__file__).parent / "results"
TABLES = Path.home() / ".cache" / "netsculpt" / "latency_targets_tables"


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name in ("convnext_atto", "ghostnet_100"):
        import timm

        return timm.create_model(name, pretrained=False).eval()
    import torchvision

    return getattr(torchvision.models, name)(weights=None).eval()


def measured_ratio(lat: LatencyModel, base: torch.nn.Module, small: torch.nn.Module, rounds: int) -> dict:
    """Median over alternating rounds of pruned / original (each a median of ``lat.runs`` runs)."""
    ratios, b_ms, s_ms = [], [], []
    for r in range(rounds):
        order = [(base, b_ms), (small, s_ms)] if r % 2 == 0 else [(small, s_ms), (base, b_ms)]
        for m, out in order:
            out.append(lat.measure_model(m))
        ratios.append(s_ms[-1] / b_ms[-1])
    return {
        "measured": statistics.median(ratios),
        "base_ms": statistics.median(b_ms),
        "pruned_ms": statistics.median(s_ms),
        "spread": max(ratios) - min(ratios),
    }


def run(name: str, runtime: str, tag: str, size: int, rounds: int, out: Path) -> None:
    model = build(name)
    x = torch.randn(1, 3, size, size)
    table = TABLES / f"{tag}_{name}_{runtime}_{size}.json"  # a cache, kept out of the repository
    t0 = time.time()
    if table.exists():
        lat = LatencyModel.load(table, model, x)
    else:
        lat = LatencyModel(model, x, runtime=runtime, clock="thread")
    for target in TARGETS:
        row = {"tag": tag, "model": name, "runtime": runtime, "target": target, "size": size}
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                plan, graph = ns.plan_pruning(
                    model, x, target=ns.Target(latency=target), latency=lat, runtime=runtime
                )
            row["warnings"] = [str(w.message)[:300] for w in caught if "latency" in str(w.message).lower()]
            small = ns.apply_plan(model, plan, x, graph=graph)
            row["predicted"] = float(plan.meta["predicted"])
            row["round_to"] = plan.meta.get("round_to")
            row["checks"] = plan.meta.get("latency_checks", [])  # end-to-end checks of the refit
            row.update(measured_ratio(lat, model, small, rounds))
        except Exception as exc:  # a model the prune refuses is a finding, not a crash of the probe
            row["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
            traceback.print_exc()
        row["offset_share"] = lat.offset_ms / max(lat.base_ms, 1e-9)
        row["scale"] = lat.scale
        row["table_entries_measured"] = lat.measured
        row["seconds"] = round(time.time() - t0, 1)
        row["calibration"] = str(print_calibration(f"{name} {runtime} {target}"))
        print(json.dumps(row), flush=True)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
    lat.save(table)


def report(tags: list[str], path: Path) -> None:
    """The text table: model x runtime x target; per tag predicted / measured ratio and the CPU
    calibration (1-thread matmul GFLOP/s) printed beside that row."""
    rows = {}
    for f in sorted(RESULTS.glob("latency_targets_*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            rows[(r["model"], r["runtime"], r["target"], r["tag"])] = r
    head = "  ".join(f"{t + ' pred/meas (GFLOP/s)':>28}" for t in tags)
    lines = [f"{'model':20} {'runtime':12} {'target':>6}  " + head]
    for model in MODELS:
        for runtime in RUNTIMES:
            for target in TARGETS:
                cells = []
                for tag in tags:
                    r = rows.get((model, runtime, target, tag))
                    if r is None:
                        cell = "-"
                    elif "error" in r:
                        floor = r["error"].partition("leaves latency=")[2][:5]
                        cell = f"unreachable (floor {floor})" if floor else "error"
                    else:
                        gflops = r["calibration"].split()[1]
                        cell = f"{r['predicted']:.2f} / {r['measured']:.2f} ({gflops})"
                    cells.append(cell.rjust(28))
                lines.append(f"{model:20} {runtime:12} {target:6.2f}  " + "  ".join(cells))
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tag", default="before")
    p.add_argument("--models", nargs="*", default=list(MODELS))
    p.add_argument("--runtimes", nargs="*", default=list(RUNTIMES))
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--report", nargs="*", help="only write the text table for these tags")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.report:
        report(args.report, RESULTS / "latency_targets_2026-12-07.txt")
        return
    RESULTS.mkdir(exist_ok=True)
    print_calibration("start")
    for name in args.models:
        out = RESULTS / f"latency_targets_{args.tag}_{name}.jsonl"
        done = set()
        if out.exists():
            done = {(json.loads(s)["runtime"]) for s in out.read_text().splitlines()}
        for runtime in args.runtimes:
            if runtime in done:
                continue
            run(name, runtime, args.tag, args.size, args.rounds, out)


if __name__ == "__main__":
    main()
