"""Offline check of screening predictors on a plain GA's own offspring (issue 21, tuning seeds only).

The plain GA scores every offspring, so its score cache, split by generation, is exactly the data a
screen would face: for each generation g >= 2, a predictor trained on the cheap scores of generations
< g ranks generation g's new candidates, and the Kendall τ of that ranking is what the screen's picks
depend on. Running the plain GA once per seed (about 150 s) makes every predictor variant comparable
on identical data without a screened run per variant.

    PYTHONPATH=src python benchmarks/_screen_offline.py --part record --seed 3
    PYTHONPATH=src python benchmarks/_screen_offline.py --part rank --seeds 3,4
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _predictor_tables import RESULTS, TARGET

from netsculpt.fileio import write_json


def record(args: argparse.Namespace) -> None:
    """Run the plain GA (the benchmark's settings) and store its cheap scores generation by generation."""
    from netsculpt.search import GeneticConfig, search_widths
    from predictors import setup

    base, x, graph, scores, train, held, _ = setup(args)
    out_dir = Path(args.cache) / f"screen_offline_{args.seed}"
    state_file = out_dir / "search_state.json"
    generations: list[list[list]] = []
    seen: set[str] = set()

    def on_step(progress: dict) -> None:
        cache = json.loads(state_file.read_text())["cache"]["cheap"]
        new = [[k, v[1]] for k, v in cache.items() if k not in seen]
        seen.update(k for k, _ in new)
        generations.append(new)

    config = GeneticConfig(criterion="l1", eval_batches=2, full_batches=4, seed=args.seed, pop_size=16,
                           elite=4, generations=8)  # fmt: skip
    search_widths(base, x, "genetic", f"macs={TARGET}", train, held, config, graph=graph, scores=scores,
                  on_step=on_step, out_dir=out_dir, resume=True)  # fmt: skip
    data = {"seed": args.seed, "generations": generations}
    write_json(RESULTS / f"predictors_offline_{args.seed}.json", data)


def rank(args: argparse.Namespace) -> None:
    """τ of each predictor variant on each later generation's offspring, trained on the earlier ones."""
    from netsculpt.predictors.features import GraphFeatures
    from netsculpt.predictors.predictor import Predictor, rank_quality
    from netsculpt.search import SearchSpace
    from predictors import setup

    base, x, graph, scores, *_ = setup(args)
    space = SearchSpace(base, x, graph, scores)
    features = GraphFeatures(space, base, extended=False)
    variants = args.variants.split(",")
    rows: dict[str, list[float]] = {v: [] for v in variants}
    for seed in [int(s) for s in args.seeds.split(",")]:
        gens = json.loads((RESULTS / f"predictors_offline_{seed}.json").read_text())["generations"]
        for g in range(2, len(gens)):
            train = [(np.array([int(c) for c in k.split(",")]), v) for gen in gens[:g] for k, v in gen]
            test = [(np.array([int(c) for c in k.split(",")]), v) for k, v in gens[g]]
            if len(test) < 3:
                continue
            line = [f"seed {seed} gen {g} (train {len(train)}, new {len(test)}):"]
            counts, targets = [c for c, _ in train], np.array([v for _, v in train])
            new_counts, actual = [c for c, _ in test], [v for _, v in test]
            for variant in variants:
                kind, _, option = variant.partition(":")
                if kind in ("gcn", "mlp"):
                    pred = Predictor(kind, features, {}, seed=seed).fit(counts, targets, 300)
                    predicted = pred.predict(new_counts)
                    if option == "anchor":
                        predicted = _anchor(pred, space, counts, targets, new_counts, predicted)
                    elif option == "gp":  # a GP on the predictor's residuals
                        residual = targets - pred.predict(counts)
                        predicted = predicted + _gp(
                            space, counts, residual, new_counts, "ard", standardise=False
                        )
                else:
                    predicted = _gp(space, counts, targets, new_counts, option)
                tau = rank_quality(predicted, actual)["kendall"] or 0.0
                rows[variant].append(tau)
                line.append(f"{variant} {tau:+.3f}")
            print("  ".join(line), flush=True)
    print("mean τ: " + "  ".join(f"{v} {np.mean(r):+.3f}" for v, r in rows.items()))


def _anchor(pred, space, counts, targets, new, predicted) -> np.ndarray:
    """Each prediction corrected by the predictor's error at the nearest scored candidate."""
    fitted = pred.predict(counts)
    ratios = np.array([space.ratios(c) for c in counts])
    out = []
    for c, p in zip(new, predicted):
        j = int(np.argmin(np.abs(ratios - space.ratios(c)).sum(1)))
        out.append(p + targets[j] - fitted[j])
    return np.array(out)


def _gp(space, counts, targets, new, option: str, standardise: bool = True) -> np.ndarray:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    X = np.array([space.ratios(c) for c in counts])
    shift, scale_y = (targets.mean(), targets.std() + 1e-12) if standardise else (0.0, 1.0)
    y = (targets - shift) / scale_y
    scale = np.full(X.shape[1], 0.3) if option == "ard" else 0.3
    kernel = ConstantKernel(1.0) * Matern(length_scale=scale, nu=2.5) + WhiteKernel(0.1)
    gp = GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=2, random_state=0).fit(X, y)
    return gp.predict(np.array([space.ratios(c) for c in new])) * scale_y + shift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["record", "rank"], required=True)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--seeds", default="3,4")
    parser.add_argument("--variants", default="gcn,gcn:anchor,mlp,gp,gp:ard")
    parser.add_argument("--cache", default="runs/bench/search")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    {"record": record, "rank": rank}[args.part](args)


if __name__ == "__main__":
    main()
