"""N2N transfer (issue 18 section 3): does a resnet20 policy warm-start resnet56's search in fewer episodes?

    PYTHONPATH=src python benchmarks/n2n.py --part run --model resnet20_cifar --metric params \
        --target 0.2 --remove-episodes 5 --shrink-episodes 10 --baselines "" --finetune-epochs 5 \
        --results n2n_transfer.json
    PYTHONPATH=src python benchmarks/n2n.py --part run --model resnet56_cifar --metric params \
        --target 0.2 --remove-episodes 10 --shrink-episodes 15 --baselines "" --finetune-epochs 5 \
        --results n2n_transfer.json --policy runs/bench/search/n2n_params0.2_fill_seed0
    PYTHONPATH=src python benchmarks/n2n_transfer.py          # this comparison

The cold run is n2n.py's resnet56 fill search of the same ``--seed`` (same settings, random initial
policies). The criterion was fixed before the warm run finished: episodes (students, in search order)
until the first student whose held-out reward reaches the cold run's best *sampled* student's reward,
exactly and within ``--tolerance`` (0.01 reward = 1 pp of held-out accuracy). The noiseless policies'
own student is scored once after the last episode, so it is reported beside, not counted. Wall times
are the searches' own, with the calibrations recorded by the runs and one measured now.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _calibration import print_calibration

RESULTS = Path("benchmarks/results")


def _load(folder: Path) -> dict:
    history = json.loads((folder / "search.json").read_text())["history"]
    seconds = json.loads((folder / "bench_search_s.json").read_text())
    return {"history": history, "seconds": float(seconds)}


def _first(rewards: list[float], level: float) -> int | None:
    """1-based episode of the first reward >= level (None: never)."""
    return next((i + 1 for i, r in enumerate(rewards) if r >= level - 1e-12), None)


def _calibrations(name: str, model: str, transfer: bool, seed: int) -> str:
    path = RESULTS / name
    if not path.exists():
        return "not recorded"
    runs = [
        r for r in json.loads(path.read_text()) if r["model"] == model and bool(r.get("transfer")) == transfer
    ]
    runs = [r for r in runs if r["seed"] == seed and r["metric"] == "params"]
    return " | ".join(runs[0]["calibration"]) if runs else "not recorded"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="runs/bench/search")
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0, help="the resnet56 searches' seed (source: seed 0)")
    args = parser.parse_args(argv)
    cache = Path(args.cache)
    runs = {
        "resnet20 (source)": (
            _load(cache / "n2n_params0.2_fill_seed0"),
            "resnet20_cifar",
            False,
            "n2n_transfer.json",
        ),
        "resnet56 cold": (
            _load(cache / f"n2n_resnet56_params0.2_fill_seed{args.seed}"),
            "resnet56_cifar",
            False,
            "n2n_fill.json",
        ),
        "resnet56 warm": (
            _load(cache / f"n2n_resnet56_transfer_params0.2_fill_seed{args.seed}"),
            "resnet56_cifar",
            True,
            "n2n_transfer.json",
        ),
    }
    cold = [s["reward"] for s in runs["resnet56 cold"][0]["history"]["students"]]
    best = max(cold)
    level = best - args.tolerance
    print(
        f"criterion (fixed in advance): episodes until a student's held-out reward >= the cold resnet56 "
        f"run's best sampled reward {best:.4f}, exactly and within {args.tolerance} ({level:.4f})"
    )
    header = ("run", "students", "search s", "s/student", "to exact", "to tol", "best (ep)", "mean 1-10",
              "mean stage2", "policy's own")  # fmt: skip
    print(" | ".join(header))
    record = {"criterion": {"level_exact": best, "tolerance": args.tolerance}, "runs": {}}
    for label, (run, model, transfer, name) in runs.items():
        students = run["history"]["students"]
        rewards = [s["reward"] for s in students]
        shrink = [s["reward"] for s in students if s["stage"] == "shrink"]
        top = int(np.argmax(rewards))
        own = run["history"]["policy"]["reward"]
        row = {
            "students": len(rewards),
            "search_s": run["seconds"],
            "s_per_student": run["seconds"] / len(rewards),
            "to_exact": _first(rewards, best),
            "to_tolerance": _first(rewards, level),
            "best": rewards[top],
            "best_episode": top + 1,
            "mean_first10": float(np.mean(rewards[:10])),
            "mean_shrink": float(np.mean(shrink)),
            "policy_reward": own,
            "picked": run["history"]["picked"]["episode"],
            "rewards": rewards,
            "calibration": _calibrations(
                name, model, transfer, 0 if model == "resnet20_cifar" else args.seed
            ),
        }
        record["runs"][label] = row
        print(
            f"{label} | {row['students']} | {row['search_s']:.0f} | {row['s_per_student']:.1f} | "
            f"{row['to_exact'] or 'never'} | {row['to_tolerance'] or 'never'} | "
            f"{row['best']:.4f} ({top + 1}) | "
            f"{row['mean_first10']:.4f} | {row['mean_shrink']:.4f} | {own:.4f}"
        )
    for label, row in record["runs"].items():
        print(f"  {label}: rewards {' '.join(f'{r:.3f}' for r in row['rewards'])}")
        print(f"    calibration of its run: {row['calibration']}")
    record["calibration_now"] = str(print_calibration("now"))
    from netsculpt.fileio import write_json

    suffix = f"_seed{args.seed}" if args.seed else ""  # seed 0's file predates --seed
    write_json(RESULTS / f"n2n_transfer_compare{suffix}.json", record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
