"""Rule 1 of benchmarks/results/predictors_ga_tuning.txt: which predictor variant ranks a GA's proposals.

Replays an audited screened GA (benchmarks/_ga_diagnose.py on a tuning seed): each round, every variant is
trained on exactly the candidates that run had scored and ranks all the round's proposals, whose actual
cheap scores the audit recorded. Prints the Kendall τ per round and its mean.

    PYTHONPATH=src python benchmarks/_screen_tune.py benchmarks/results/predictors_diag_gcn_4_before.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from netsculpt.predictors import GraphFeatures, Predictor, rank_quality
from netsculpt.search import SearchSpace
from predictors import setup

VARIANTS = [(f, loss) for f in ("first", "extended") for loss in ("mse", "rank")]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("audit")
    p.add_argument("--cache", default="runs/bench/search")
    args = p.parse_args()
    torch.set_num_threads(1)
    base, x, graph, scores, *_ = setup(args)
    space = SearchSpace(base, x, graph, scores)
    run = json.loads(Path(args.audit).read_text())
    audit, seed = run["audit"], run["seed"]
    taus: dict[str, list[float]] = {}
    for features, loss in VARIANTS:
        name = f"{features} features, {loss}"
        feats = GraphFeatures(space, base, extended=features == "extended")
        for r in audit:
            pred = Predictor("gcn", feats, {}, seed=seed, loss=loss)
            pred.fit([np.array(w) for w in r["train_widths"]], r["train_y"])
            predicted = pred.predict([np.array(w) for w in r["pool_widths"]])
            taus.setdefault(name, []).append(rank_quality(predicted, r["pool_actual"])["kendall"] or 0.0)
        print(f"{name:26s} mean τ {np.mean(taus[name]):.3f}  per round "
              f"{' '.join(f'{t:.2f}' for t in taus[name])}", flush=True)  # fmt: skip
    logged = [r["tau_all"] for r in audit]
    print(f"{'as run (first, mse)':26s} mean τ {np.mean(logged):.3f}  per round "
          f"{' '.join(f'{t:.2f}' for t in logged)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
