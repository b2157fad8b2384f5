"""SIGKILL `netsculpt compress` at many random points; count how many restarts ended identically.

Two recipes: a small train / prune / fine-tune run with its report, and one with every other stage kind
(search, distillation, DKM clustering, int8 quantization). Each trial kills a run up to
``--kills-per-trial`` times (the first point drawn by category, later ones uniformly from what is left)
and compares the finished folder with an uninterrupted run (results.json without timings, and every
model's bytes). See benchmarks/_kill_points.py.

    PYTHONPATH=src:. python benchmarks/robustness_kill.py [--kills 40] [--wide-kills 20] [--seed 0]
Exits 1 when a restart ended differently or a half-written file was seen.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _calibration import print_calibration
from benchmarks._kill_points import RECIPE, RECIPE_WIDE, run_kill_points, summarize


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=40, help="kill points on the small recipe")
    parser.add_argument("--wide-kills", type=int, default=20, help="kill points on the every-stage recipe")
    parser.add_argument("--kills-per-trial", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the reports here")
    args = parser.parse_args()
    print_calibration("start")
    reports = {}
    for label, recipe, n in (("small", RECIPE, args.kills), ("wide", RECIPE_WIDE, args.wide_kills)):
        if n <= 0:
            continue
        report = run_kill_points(n, seed=args.seed, kills_per_trial=args.kills_per_trial, recipe=recipe)
        reports[label] = report
        print(f"[{label}] {summarize(report)}", flush=True)
        for line in report["mismatches"] + report["half_written"]:
            print(f"[{label}]   {line}")
    print_calibration("end")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2) + "\n")
    bad = any(r["mismatches"] or r["half_written"] or r["identical"] != r["trials"] for r in reports.values())
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
