"""Why the GCN-screened GA stalls (issue 21 bar A): replay a screened GA and audit every screen.

Each screen's proposals are all cheap-scored *outside* the search (straight through the executor: no
cache entry, no evaluation counted, so the search runs exactly as it would), which shows what the
screener kept vs rejected and how its predicted ranking of the proposals correlates with their actual
cheap scores as the run goes; each generation records the population's diversity. Usage:

    PYTHONPATH=src python benchmarks/_ga_diagnose.py --seed 0 --generations 8 [--tag _before]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from netsculpt.fileio import write_json
from netsculpt.predictors import Screener
from netsculpt.predictors.predictor import rank_quality
from netsculpt.search import GeneticConfig, search_widths
from predictors import RESULTS, TARGET, setup

AUDIT: list[dict] = []


def audited_select(original):
    def select(self: Screener, candidates, costs=None):
        before = set(self.seen)
        chosen = original(self, candidates, costs)
        space, scorer = self.ctx.space, self.ctx.scorer
        keys = [space.key(c) for c in candidates]
        new = [i for i, k in enumerate(keys) if k not in before and k not in keys[:i]]
        if not new or (self.rounds[-1]["fallback"] and not self.rounds[-1].get("probe")):
            return chosen
        cands = [np.asarray(candidates[i]) for i in new]
        predicted = self.predictor.predict(cands)
        jobs = [(space.keep(c), self.ctx.config.eval_batches) for c in cands]
        actual = np.array([scorer.value(e) for e in scorer.executor.map(jobs)])
        picked = np.array([i in chosen for i in new])
        seen_counts, seen_y = self.data()
        AUDIT.append(
            {
                "round": len(self.rounds) - 1,
                "trained_on": self.rounds[-1]["trained_on"],
                "train_target_range": [
                    float(np.min(seen_y)),
                    float(np.median(seen_y)),
                    float(np.max(seen_y)),
                ],
                "pool": len(new),
                "tau_all": rank_quality(predicted, actual)["kendall"],
                "tau_picked": rank_quality(predicted[picked], actual[picked])["kendall"],
                "actual_picked_mean": float(actual[picked].mean()),
                "actual_rejected_mean": float(actual[~picked].mean()),
                "actual_best_picked": float(actual[picked].min()),
                "actual_best_rejected": float(actual[~picked].min()) if (~picked).any() else None,
                "true_top8_hit": int(picked[np.argsort(actual)[: int(picked.sum())]].sum()),
                "pred_range": [float(predicted.min()), float(predicted.max())],
                "actual_range": [float(actual.min()), float(actual.max())],
                # the raw pool, for replaying predictor variants offline (tuning seeds only)
                "pool_widths": [[int(v) for v in c] for c in cands],
                "pool_actual": actual.tolist(),
                "pool_predicted": predicted.tolist(),
                "pool_picked": picked.tolist(),
                "train_widths": [[int(v) for v in c] for c in seen_counts[: self.rounds[-1]["trained_on"]]],
                "train_y": seen_y[: self.rounds[-1]["trained_on"]].tolist(),
            }
        )
        a = AUDIT[-1]
        print(f"  audit round {a['round']}: tau(all {a['pool']}) {a['tau_all']:.3f}, picked mean "
              f"{a['actual_picked_mean']:.3f} vs rejected {a['actual_rejected_mean']:.3f}, best picked "
              f"{a['actual_best_picked']:.3f} vs rejected {a['actual_best_rejected']}, "
              f"top-{int(picked.sum())} hits {a['true_top8_hit']}", flush=True)  # fmt: skip
        return chosen

    return select


def diversity(rows: list[dict], space) -> dict:
    r = np.array([space.ratios(np.array(row["widths"])) for row in rows])
    d = np.abs(r[:, None, :] - r[None, :, :]).mean(-1)
    both = [(row["cheap"][1], row["full"][1]) for row in rows if row["cheap"] and row["full"]]
    gap = float(np.mean([f - c for c, f in both])) if both else None  # full loss - cheap loss
    return {
        "mean_l1": float(d[np.triu_indices(len(r), 1)].mean()),
        "unique": len({tuple(x) for x in r}),
        "full_minus_cheap": gap,
        "n_both": len(both),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--plain", action="store_true", help="diversity of the plain GA instead")
    p.add_argument("--tag", default="")
    p.add_argument("--trust", type=float, default=-1.0, help="screen_trust (-1: the old ungated screen)")
    p.add_argument("--loss", default="mse", help="predictor_loss (mse: the old screen's)")
    p.add_argument("--features", default="first", help="predictor_features (first: the old screen's)")
    p.add_argument("--pool", type=int, default=2, help="screen_pool")
    p.add_argument("--cache", default="runs/bench/search")
    args = p.parse_args()
    torch.set_num_threads(1)
    base, x, graph, scores, train, held, _ = setup(args)
    from netsculpt.search import SearchSpace

    space = SearchSpace(base, x, graph, scores)
    common = {"criterion": "l1", "eval_batches": 2, "full_batches": 4, "seed": args.seed, "pop_size": 16,
              "elite": 4, "generations": args.generations}  # fmt: skip
    if args.plain:
        config = GeneticConfig(**common)
    else:
        config = GeneticConfig(predictor="gcn", predictor_min=16, screen_keep=0.25, screen_trust=args.trust,
                               predictor_loss=args.loss, predictor_features=args.features,
                               screen_pool=args.pool, **common)  # fmt: skip
        Screener.select = audited_select(Screener.select)
    gens: list[dict] = []
    start = time.perf_counter()

    def on_step(progress: dict) -> None:
        rec = progress["generations"][-1]
        gens.append({"generation": rec["generation"], "best": rec["best"], "mean": rec["mean"],
                     "evaluated": rec["evaluated"], **diversity(rec["population"], space),
                     "seconds": time.perf_counter() - start})  # fmt: skip
        g = gens[-1]
        print(f"  gen {g['generation']}: best {g['best']:.4f} mean {g['mean']:.4f} evals {g['evaluated']} "
              f"diversity {g['mean_l1']:.3f} unique {g['unique']} full-cheap {g['full_minus_cheap']}",
              flush=True)  # fmt: skip

    search_widths(base, x, "genetic", f"macs={TARGET}", train, held, config, graph=graph, scores=scores,
                  on_step=on_step)  # fmt: skip
    name = RESULTS / f"predictors_diag_{'plain' if args.plain else 'gcn'}_{args.seed}{args.tag}.json"
    write_json(name, {"seed": args.seed, "generations": gens, "audit": AUDIT})
    print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
