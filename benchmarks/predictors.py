"""Predictor-guided search on resnet20_cifar / mnist5k (32x32, 3 channels) at 0.5x MACs (issue 21).

Run in parts (each well under 20 minutes on the shared 2-core machine), then print the tables:

    PYTHONPATH=src python benchmarks/predictors.py --part rank         # GCN vs MLP vs cheap score
    PYTHONPATH=src python benchmarks/predictors.py --part ga --seed 0  # plain vs GCN-screened GA
    PYTHONPATH=src python benchmarks/predictors.py --part nao --seed 0 # NAO vs uniform after fine-tune
    PYTHONPATH=src python benchmarks/predictors.py --part table        # everything measured so far

* rank: ``--candidates`` random allocation shapes scaled onto the budget; each gets the cheap score
  (BN re-estimated, 2 held-out batches) and a 1-epoch KD fine-tune, then its accuracy on the 500
  held-out training images (never the test split). GCN and MLP are trained on the fine-tuned accuracy of
  a random 2/3 and ranked on the other 1/3 (``--splits`` splits): Kendall τ and Spearman ρ, beside the
  cheap score's on the same held-out candidates. Bar: GCN τ >= 0.6 and above the MLP's.
* ga: the plain GA (pop 16, 10 generations, elite 4) and the GA screened by the online GCN (same
  population, up to 30 generations, stopped once it matches the plain GA's best full-score fitness).
  Bar: the screened GA reaches the plain GA's best fitness with <= 50% of its evaluations.
* nao: NAO (16 initial, 8 rounds of 8) vs uniform widths, both fine-tuned 3 epochs by KD, test accuracy.
  Bar: NAO >= uniform on each seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _calibration import print_calibration
from _tables import FAILURES, bar, table

import netsculpt as ns
from netsculpt.fileio import write_json
from netsculpt.importance import get_criterion
from netsculpt.predictors import GraphFeatures, Predictor, rank_quality
from netsculpt.search import GeneticConfig, NAOConfig, SearchSpace, finetune_pruned, search_widths
from netsculpt.search.evaluator import adapt_batchnorm_, sample_inputs, take_batches
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate

TARGET = 0.5
DATA = {"resize": 32, "channels": 3}
VAL_SIZE = 500
RESULTS = Path("benchmarks/results")


def setup(args: argparse.Namespace):
    sys.path.insert(0, str(Path(__file__).parent))
    from search import baseline  # the cached baseline of benchmarks/search.py (4 epochs, 97.0%)

    train, held, test = holdout_loaders(
        "mnist5k", val_size=VAL_SIZE, batch_size=64, eval_batch_size=125, **DATA
    )
    base, _ = baseline(argparse.Namespace(cache=args.cache, base_epochs=4), train, test)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    graph = ns.trace(base, x)
    scores = get_criterion("l1").score(base, graph, None)
    return base, x, graph, scores, train, held, test


def finetune(base, plan, x, graph, epochs: int, seed: int, held, final, subset: int = 0):
    """KD fine-tune (the ``finetune`` preset), monitored on held-out data; returns the score on ``final``."""
    config = TrainConfig.preset("finetune", epochs=epochs, seed=seed)
    ft_train, _, _ = holdout_loaders(
        "mnist5k", val_size=VAL_SIZE, batch_size=config.batch_size, augment=config.augment, **DATA
    )
    if subset:  # the first images of the training split only (never the held-out ones): a short fine-tune
        data = torch.utils.data.Subset(ft_train.dataset, range(subset))
        gen = torch.Generator().manual_seed(seed)
        ft_train = torch.utils.data.DataLoader(
            data, batch_size=config.batch_size, shuffle=True, generator=gen
        )
    model = ns.apply_plan(base, plan, x, graph=graph)
    finetune_pruned(model, base, ft_train, held, config)
    return model, evaluate(model, final)


def part_rank(args, base, x, graph, scores, train, held, test) -> dict:
    space = SearchSpace(base, x, graph, scores)
    rng = np.random.default_rng(args.seed)
    low = space.floors / space.sizes
    bn = sample_inputs(train, 2, 0)
    cheap_batches = take_batches(held, 2, "held-out")
    rows = []
    for i in range(args.candidates):
        counts = space.fit(rng.uniform(low, 1.0) if i else np.ones(len(space)), "macs", TARGET)
        plan = space.plan(counts)
        pruned = ns.apply_plan(base, plan, x, graph=graph)
        adapt_batchnorm_(pruned, bn)
        cheap = evaluate(pruned, cheap_batches)
        start = time.perf_counter()
        _, (acc, loss) = finetune(base, plan, x, graph, 1, 0, held, held, args.subset)
        rows.append({"widths": [int(c) for c in counts], "cheap_loss": cheap[1], "cheap_acc": cheap[0],
                     "ft_acc": acc, "ft_loss": loss})  # fmt: skip
        print(f"  candidate {i}: cheap loss {cheap[1]:.4f}, fine-tuned held-out {acc:.2%} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    return {"candidates": rows, "macs": [space.cost(np.array(r["widths"]), "macs") for r in rows]}


def rank_table(data: dict, base, x, graph, scores, splits: int) -> list[tuple]:
    space = SearchSpace(base, x, graph, scores)
    features = GraphFeatures(space, base)
    rows = data["candidates"]
    counts = [np.array(r["widths"]) for r in rows]
    error = np.array([1 - r["ft_acc"] for r in rows])
    cheap = np.array([r["cheap_loss"] for r in rows])
    out: dict[str, list[dict]] = {"gcn": [], "mlp": [], "gcn_on_cheap": [], "cheap score": []}
    rng = np.random.default_rng(0)
    for s in range(splits):
        order = rng.permutation(len(rows))
        n_train = (2 * len(rows)) // 3
        tr, te = order[:n_train], order[n_train:]
        for kind in ("gcn", "mlp"):
            p = Predictor(kind, features, {}, seed=s).fit([counts[i] for i in tr], error[tr])
            out[kind].append(rank_quality(p.predict([counts[i] for i in te]), error[te]))
        p = Predictor("gcn", features, {}, seed=s).fit([counts[i] for i in tr], cheap[tr])
        out["gcn_on_cheap"].append(rank_quality(p.predict([counts[i] for i in te]), error[te]))
        out["cheap score"].append(rank_quality(cheap[te], error[te]))
    return [
        (name, f"{np.mean([q['kendall'] for q in qs]):.3f}", f"{np.std([q['kendall'] for q in qs]):.3f}",
         f"{np.mean([q['spearman'] for q in qs]):.3f}", qs[0]["n"])
        for name, qs in out.items()
    ]  # fmt: skip


def part_ga(args, base, x, graph, scores, train, held, test) -> dict:
    common = {
        "criterion": "l1",
        "eval_batches": 2,
        "full_batches": 4,
        "seed": args.seed,
        "pop_size": args.pop,
        "elite": args.pop // 4,
    }
    out = {}
    plain_best: list[float] = []
    for label, config in (
        ("plain", GeneticConfig(generations=args.generations, **common)),
        (
            "gcn",
            GeneticConfig(
                generations=3 * args.generations,
                predictor="gcn",
                predictor_min=16,
                screen_keep=0.25,
                **common,
            ),
        ),
    ):
        trace: list[dict] = []
        start = time.perf_counter()

        class Reached(Exception):
            pass

        def on_step(progress: dict, trace=trace, start=start) -> None:
            rec = progress["generations"][-1]
            trace.append({"generation": rec["generation"], "best": rec["best"],
                          "evaluated": rec["evaluated"], "seconds": time.perf_counter() - start})  # fmt: skip
            if plain_best and rec["best"] <= plain_best[0]:
                raise Reached

        try:
            result = search_widths(base, x, "genetic", f"macs={TARGET}", train, held, config,
                                   graph=graph, scores=scores, on_step=on_step)  # fmt: skip
            summary = result.history.get("predictor")
        except Reached:
            summary = None
        out[label] = {"trace": trace, "predictor": summary}
        if label == "plain":
            plain_best.append(trace[-1]["best"])
        print(f"  {label}: best {trace[-1]['best']:.4f} after {trace[-1]['evaluated']} in "
              f"{trace[-1]['seconds']:.0f} s", flush=True)  # fmt: skip
    return out


def part_nao(args, base, x, graph, scores, train, held, test) -> dict:
    config = NAOConfig(
        criterion="l1",
        eval_batches=2,
        full_batches=4,
        seed=args.seed,
        rounds=args.rounds,
        init_size=args.pop,
        top=args.pop // 2,
        elite=args.pop // 4,
    )
    start = time.perf_counter()
    result = search_widths(base, x, "nao", f"macs={TARGET}", train, held, config, graph=graph, scores=scores)
    seconds = time.perf_counter() - start
    space = SearchSpace(base, x, graph, scores)
    uniform = space.plan(space.fit(np.ones(len(space)), "macs", TARGET))
    rounds = [{k: r[k] for k in ("round", "best", "pool", "predictor")} for r in result.history["rounds"]]
    out = {"search_seconds": seconds, "evaluated": result.evaluated, "widths": list(result.widths.values()),
           "rounds": rounds}  # fmt: skip
    for label, plan in (("uniform", uniform), ("nao", result.plan)):
        model, (acc, loss) = finetune(base, plan, x, graph, args.finetune_epochs, args.seed, held, test)
        macs = ns.measure(model, x, latency=False).macs / ns.measure(base, x, latency=False).macs
        out[label] = {"test_acc": acc, "test_loss": loss, "macs": macs,
                      "estimate": plan.meta.get("estimate")}  # fmt: skip
        print(f"  {label}: test {acc:.2%} (loss {loss:.4f}, {macs:.3f}x MACs)", flush=True)
    return out


def print_tables(args, base, x, graph, scores) -> None:
    rank = RESULTS / "predictors_rank.json"
    if rank.exists():
        data = json.loads(rank.read_text())
        rows = rank_table(data, base, x, graph, scores, args.splits)
        n = len(data["candidates"])
        title = f"rank quality vs 1-epoch fine-tuned held-out accuracy, {n} candidates at {TARGET}x MACs"
        header = ("ranker", "Kendall τ", "± sd", "Spearman ρ", "held-out n")
        table(f"{title}, {args.splits} random 2/3-1/3 splits", header, rows)
        tau = {r[0]: float(r[1]) for r in rows}
        print(bar(tau["gcn"] >= 0.6 and tau["gcn"] > tau["mlp"],
                  f"GCN τ {tau['gcn']:.3f} >= 0.6 and > MLP τ {tau['mlp']:.3f}"))  # fmt: skip
    ga = sorted(RESULTS.glob("predictors_ga_*.json"))
    rows = []
    for path in ga:
        d = json.loads(path.read_text())
        p, g = d["plain"]["trace"][-1], d["gcn"]["trace"][-1]
        n_p, n_g = sum(p["evaluated"].values()), sum(g["evaluated"].values())
        reached = g["best"] <= p["best"]
        rows.append((path.stem[-1], f"{p['best']:.4f}", n_p, f"{p['seconds']:.0f}", f"{g['best']:.4f}",
                     f"{n_g} ({g['evaluated']['cheap']}+{g['evaluated']['full']})", f"{g['seconds']:.0f}",
                     f"{n_g / n_p:.2f}" if reached else "not reached", f"{g['seconds'] / p['seconds']:.2f}",
                     d.get("calibration", "")))  # fmt: skip
        text = f"seed {path.stem[-1]}: screened GA matched the plain GA: {n_g}/{n_p} = {n_g / n_p:.0%} evals"
        print(bar(reached and n_g <= 0.5 * n_p, text + (" (bar <= 50%)" if reached else " - not reached")))
    if rows:
        table("plain GA vs GCN-screened GA: evaluations (cheap + full) and wall time to the plain GA's best "
              "full-score held-out loss", ("seed", "plain best", "plain evals", "plain s", "gcn best",
              "gcn evals", "gcn s", "evals ratio", "time ratio", "calibration"), rows)  # fmt: skip
    rows = []
    for path in sorted(RESULTS.glob("predictors_nao_*.json")):
        d = json.loads(path.read_text())
        u, n = d["uniform"], d["nao"]
        rows.append((path.stem[-1], f"{u['test_acc']:.2%}", f"{n['test_acc']:.2%}", f"{u['test_loss']:.4f}",
                     f"{n['test_loss']:.4f}", f"{n['macs']:.3f}", sum(d["evaluated"].values()),
                     f"{d['search_seconds']:.0f}"))  # fmt: skip
        text = f"seed {path.stem[-1]}: NAO {n['test_acc']:.2%} >= uniform {u['test_acc']:.2%}"
        print(bar(n["test_acc"] >= u["test_acc"], text + " after the same KD fine-tune"))
    if rows:
        table(f"NAO vs uniform widths at {TARGET}x MACs, test accuracy after the same KD fine-tune",
              ("seed", "uniform acc", "NAO acc", "uniform loss", "NAO loss", "NAO MACs", "evals", "search s"),
              rows)  # fmt: skip
    print(f"bars missed: {len(FAILURES)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["rank", "ga", "nao", "table"], required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", type=int, default=48)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--subset", type=int, default=1000, help="rank: training images per fine-tune")
    parser.add_argument("--generations", type=int, default=8, help="ga: plain GA generations")
    parser.add_argument("--rounds", type=int, default=6, help="nao: rounds")
    parser.add_argument("--pop", type=int, default=16, help="ga population / nao initial candidates")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--cache", default="runs/bench/search")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    calibration = str(print_calibration("start"))
    base, x, graph, scores, train, held, test = setup(args)
    if args.part == "table":
        print_tables(args, base, x, graph, scores)
        return 1 if FAILURES else 0
    started = time.perf_counter()
    run = {"rank": part_rank, "ga": part_ga, "nao": part_nao}[args.part]
    data = run(args, base, x, graph, scores, train, held, test)
    data["calibration"] = calibration
    data["seconds"] = time.perf_counter() - started
    name = "predictors_rank.json" if args.part == "rank" else f"predictors_{args.part}_{args.seed}.json"
    write_json(RESULTS / name, data)
    print_calibration("end")
    print(f"wrote {RESULTS / name} ({data['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
