"""Predictor-guided search on resnet20_cifar / mnist5k (32x32, 3 channels) at 0.5x MACs (issue 21).

Run in parts (resumable; each well under 40 minutes on the shared 2-core machine), then print the tables:

    PYTHONPATH=src python benchmarks/predictors.py --part truth --start 0 --candidates 30  # ground truth
    PYTHONPATH=src python benchmarks/predictors.py --part ga --seed 0  # plain vs GCN-screened GA
    PYTHONPATH=src python benchmarks/predictors.py --part nao --seed 0 # NAO vs uniform after fine-tune
    PYTHONPATH=src python benchmarks/predictors.py --part table        # everything measured so far

* truth (benchmarks/_predictor_truth.py): candidates at 0.3 / 0.5 / 0.7x MACs from three width
  generators, each with its cheap score (BN re-estimated, 2 held-out batches) and the same 1-epoch KD
  fine-tune on all 3,500 training images in one data order, then its loss and accuracy on the 500
  held-out training images (never the test split); cached per candidate in predictors_truth.json, so
  parts accumulate. The first ``--repeats`` are fine-tuned with a second seed: the noise ceiling.
* table / rank (benchmarks/_predictor_rank.py): GCN variants and MLPs trained on a random 2/3 of the
  candidates rank the other 1/3 (``--splits`` splits): Kendall τ and Spearman ρ, beside the cheap
  score and MACs alone. Bar: GCN τ >= 0.6 and above the MLP's.
* ga: the plain GA (pop 16, 8 generations, elite 4) and the GA screened by the online GCN (same
  population, up to 24 generations, stopped once it matches the plain GA's best full-score fitness or has
  made as many evaluations as the plain GA). Screened generations propose ``--screen-pool`` x pop,
  a quarter scored, half of those at random (``--screen-explore``), only while the predictor's online
  Kendall τ passes ``--screen-trust`` (else the generation is a plain probe); ``--reuse-plain`` takes
  the plain GA from the seed's earlier results file (scores are deterministic; generation 0 is checked).
  Bar: the screened GA reaches the plain GA's best fitness with <= 50% of its evaluations.
* nao: NAO (16 initial, 6 rounds) vs uniform widths, both fine-tuned 3 epochs by KD, test accuracy with
  the paired standard error over the 1,000 test images (the test split cannot grow: mnist5k's fixed
  4,000/1,000 split, 500 of the 4,000 held out for the search). Bar: NAO >= uniform on each seed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _calibration import print_calibration
from _predictor_rank import fresh_rows, noise_ceiling, rank_rows
from _predictor_truth import run_truth
from _tables import FAILURES, bar, table

import netsculpt as ns
from netsculpt.fileio import write_json
from netsculpt.importance import get_criterion
from netsculpt.search import GeneticConfig, NAOConfig, SearchSpace, finetune_pruned, search_widths
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate

TARGET = 0.5
DATA = {"resize": 32, "channels": 3}
VAL_SIZE = 500
RESULTS = Path("benchmarks/results")
GA_LABELS = ("plain", "gcn")
BEST = "GCN, extended features, rank loss, 3 seeds"


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


def finetune(base, plan, x, graph, epochs: int, seed: int, held, final):
    """KD fine-tune (the ``finetune`` preset), monitored on held-out data; returns the score on ``final``."""
    config = TrainConfig.preset("finetune", epochs=epochs, seed=seed)
    ft_train, _, _ = holdout_loaders(
        "mnist5k",
        val_size=VAL_SIZE,
        batch_size=config.batch_size,
        augment=config.augment,
        order_seed=seed,  # each seed its own batch order, same split
        **DATA,
    )
    model = ns.apply_plan(base, plan, x, graph=graph)
    finetune_pruned(model, base, ft_train, held, config)
    return model, evaluate(model, final)


def part_ga(args, base, x, graph, scores, train, held, test) -> dict:
    common = {
        "criterion": "l1",
        "eval_batches": 2,
        "full_batches": 4,
        "seed": args.seed,
        "pop_size": args.pop,
        "elite": args.pop // 4,
    }
    out: dict = {}
    plain_best: list[float] = []
    earlier = RESULTS / f"predictors_ga_{args.seed}.json"
    if args.reuse_plain and earlier.exists():  # scores are deterministic: the plain GA's trace repeats
        old = json.loads(earlier.read_text())
        then = old["plain"].get("calibration", old.get("calibration"))
        out["plain"] = {**old["plain"], "calibration": then, "reused": True}
        plain_best.append(out["plain"]["trace"][-1]["best"])
        print(f"  plain: reused from {earlier} (best {plain_best[0]:.4f}; calibration then: "
              f"{out['plain']['calibration']})", flush=True)  # fmt: skip
    for label, config in (
        ("plain", GeneticConfig(generations=args.generations, **common)),
        (
            "gcn",
            GeneticConfig(
                generations=3 * args.generations,
                predictor="gcn",
                predictor_min=16,
                screen_keep=0.25,
                screen_explore=args.screen_explore,
                screen_pool=args.screen_pool,
                screen_trust=args.screen_trust,
                predictor_loss=args.predictor_loss,
                predictor_features=args.predictor_features,
                **common,
            ),
        ),
    ):
        if label in out:
            continue
        trace: list[dict] = []
        start = time.perf_counter()

        class Reached(Exception):
            pass

        def on_step(progress: dict, trace=trace, start=start) -> None:
            rec = progress["generations"][-1]
            trace.append({"generation": rec["generation"], "best": rec["best"],
                          "evaluated": rec["evaluated"], "seconds": time.perf_counter() - start,
                          **({"screen": rec["screen"]} if "screen" in rec else {})})  # fmt: skip
            if plain_best and rec["best"] <= plain_best[0]:
                raise Reached
            if plain_best and sum(rec["evaluated"].values()) >= sum(
                out["plain"]["trace"][-1]["evaluated"].values()
            ):
                raise Reached  # not reached with as many evaluations as the plain GA made: no point going on

        try:
            result = search_widths(base, x, "genetic", f"macs={TARGET}", train, held, config,
                                   graph=graph, scores=scores, on_step=on_step)  # fmt: skip
            summary = result.history.get("predictor")
        except Reached:
            summary = None
        out[label] = {"trace": trace, "predictor": summary, "calibration": str(print_calibration(label))}
        if label == "plain":
            plain_best.append(trace[-1]["best"])
        elif trace[0]["best"] != out["plain"]["trace"][0]["best"]:  # same initial population, scored alike
            raise SystemExit(f"generation 0 differs from the plain GA's: {trace[0]['best']} vs "
                             f"{out['plain']['trace'][0]['best']} (another baseline?)")  # fmt: skip
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
    # the fine-tune's data order does not depend on the seed, so uniform's result is the same every seed
    cached = Path(args.cache) / f"predictors_uniform_e{args.finetune_epochs}.json"
    if cached.exists():
        out["uniform"] = json.loads(cached.read_text())
        print(f"  uniform: test {out['uniform']['test_acc']:.2%} (cached in {cached})", flush=True)
    for label, plan in (("uniform", uniform), ("nao", result.plan)):
        if label in out:
            continue
        model, (acc, loss) = finetune(base, plan, x, graph, args.finetune_epochs, args.seed, held, test)
        macs = ns.measure(model, x, latency=False).macs / ns.measure(base, x, latency=False).macs
        out[label] = {"test_acc": acc, "test_loss": loss, "macs": macs, "correct": correct_bits(model, test),
                      "estimate": plan.meta.get("estimate")}  # fmt: skip
        print(f"  {label}: test {acc:.2%} (loss {loss:.4f}, {macs:.3f}x MACs)", flush=True)
        if label == "uniform":
            write_json(cached, out[label])
    return out


def correct_bits(model, loader) -> str:
    """Which test images ``model`` gets right, as a 0/1 string: the paired comparison's raw data."""
    model.eval()
    with torch.no_grad():
        bits = [(model(xb).argmax(1) == yb).int().tolist() for xb, yb in loader]
    return "".join(str(b) for batch in bits for b in batch)


def paired(a: str, b: str) -> tuple[float, float, int, int]:
    """Accuracy difference b - a on the same images, its standard error (from the images the two
    models disagree on), and the counts only a / only b gets right: the test set's noise floor."""
    x, y = np.array([int(c) for c in a]), np.array([int(c) for c in b])
    d = y - x
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), int((d < 0).sum()), int((d > 0).sum())


def merged_truth(paths: list[Path]) -> dict | None:
    """The candidates of every ground-truth cache (parts run side by side write separate files), which
    must share one fine-tune setting."""
    if not paths:
        return None
    parts = [json.loads(p.read_text()) for p in paths]
    for path, part in zip(paths, parts):
        if part["setting"] != parts[0]["setting"]:
            raise SystemExit(
                f"{path} has fine-tune setting {part['setting']}, {paths[0]} {parts[0]['setting']}"
            )
    return {
        "setting": parts[0]["setting"],
        "candidates": {k: v for p in parts for k, v in p["candidates"].items()},
    }


def print_fresh(base, x, graph, scores) -> dict | None:
    """The rankers trained on the first 60 candidates (on which their settings were chosen), tested on
    the later ones at 0.5x only (predictors_truth_c*.json): the cleanest held-out τ at the bar's budget."""
    fresh = merged_truth(sorted(RESULTS.glob("predictors_truth_c*.json")))
    first = merged_truth([p for p in sorted(RESULTS.glob("predictors_truth*.json")) if "_c" not in p.stem])
    if fresh is None or first is None or len(fresh["candidates"]) < 3:
        return None
    rows, info = fresh_rows(first, fresh, SearchSpace(base, x, graph, scores), base)
    table(f"rank quality on {info['n_test']} later candidates at 0.5x MACs only (the rankers trained once on "
          f"the first {info['n_train']}, whose settings they were chosen on)",
          ("ranker", "Kendall τ", "± bootstrap sd", "Spearman ρ", "τ without the worst tenth"),
          rows)  # fmt: skip
    s_ = info["summary"]
    gcn, mlp = s_[BEST]["tau"], max(s_["MLP on widths, MSE"]["tau"], s_["MLP on widths, rank loss"]["tau"])
    print(bar(gcn >= 0.6 and gcn > mlp, f"GCN τ {gcn:.3f} >= 0.6 and > best MLP τ {mlp:.3f} on the later "
              f"{info['n_test']} candidates at 0.5x"))  # fmt: skip
    return info


def _best_at(trace: list[dict], evaluations: float) -> float:
    """The best fitness a GA had after at most ``evaluations`` evaluations (cheap + full)."""
    within = [r["best"] for r in trace if sum(r["evaluated"].values()) <= evaluations]
    return within[-1] if within else float("nan")


def _gflops(calibration: str) -> str:
    """The matmul figure of a printed calibration: the machine's speed when that part ran."""
    match = re.search(r"([0-9.]+) GFLOP/s", calibration)
    return match.group(1) if match else "?"


def print_tables(args, base, x, graph, scores) -> None:
    truth = merged_truth(sorted(RESULTS.glob("predictors_truth*.json")))
    if truth is not None:
        rows, info = rank_rows(truth, SearchSpace(base, x, graph, scores), base, args.splits)
        setting = truth["setting"]
        title = (
            f"rank quality vs fine-tuned held-out loss ({setting['epochs']} epoch KD, "
            f"{setting['subset'] or 'all'} training images, one data order), {info['n']} candidates at "
            f"{sorted(set(setting['targets']))}x MACs, 3-fold cross-validation x {max(1, args.splits // 3)} "
            f"(~{info['n_test']} held out per fold; τ at 0.5x: the {info['n_half']} candidates there, pooled)"
        )
        header = ("ranker", "Kendall τ", "± sd", "Spearman ρ", "τ at 0.5x", "± sd")
        table(title, header, rows)
        ceiling = noise_ceiling(truth)
        if ceiling["n"] >= 3:
            print(
                f"noise ceiling: two fine-tune seeds of {ceiling['n']} candidates agree to Kendall τ "
                f"{ceiling['tau_loss']:.3f} (loss), {ceiling['tau_acc']:.3f} (accuracy); mean |Δ loss| "
                f"{ceiling['mean_abs_diff']:.4f} vs sd across candidates {ceiling['spread_sd']:.4f}"
            )
            if ceiling["tau_half"] is not None:
                print(
                    f"  at 0.5x only: {ceiling['n_half']} candidates, τ {ceiling['tau_half']:.3f} "
                    "between the seeds"
                )
        s_ = info["summary"]
        best = BEST
        mlp = max(s_["MLP on widths, MSE"]["tau"], s_["MLP on widths, rank loss"]["tau"])
        print(
            bar(
                s_[best]["tau"] >= 0.6 and s_[best]["tau"] > mlp,
                f"GCN τ {s_[best]['tau']:.3f} >= 0.6 and > best MLP τ {mlp:.3f} (all held-out candidates)",
            )
        )
        print(
            bar(
                s_[best]["tau_half"] >= 0.6,
                f"GCN τ {s_[best]['tau_half']:.3f} >= 0.6 on the held-out candidates at 0.5x MACs only",
            )
        )
        fresh_info = print_fresh(base, x, graph, scores)
        write_json(RESULTS / "predictors_rank.json",
                   {**info, "ceiling": ceiling, "setting": setting, "fresh": fresh_info})  # fmt: skip
    ga = sorted(RESULTS.glob("predictors_ga_*.json"))
    rows = []
    for path in ga:
        d = json.loads(path.read_text())
        p, g = d["plain"]["trace"][-1], d["gcn"]["trace"][-1]
        n_p, n_g = sum(p["evaluated"].values()), sum(g["evaluated"].values())
        reached = g["best"] <= p["best"]
        who = f"{d.get('seed', path.stem.split('_')[2])} {d.get('variant', 'pool 1 (earlier)')}"
        rows.append(
            (
                who,
                f"{p['best']:.4f}",
                n_p,
                f"{p['seconds']:.0f}",
                f"{g['best']:.4f}",
                f"{n_g} ({g['evaluated']['cheap']}+{g['evaluated']['full']})",
                f"{g['seconds']:.0f}",
                f"{n_g / n_p:.2f}" if reached else "not reached",
                "plain reused" if d["plain"].get("reused") else f"{g['seconds'] / p['seconds']:.2f}",
                f"{_best_at(d['plain']['trace'], n_p / 2):.4f} / {_best_at(d['gcn']['trace'], n_p / 2):.4f}",
                " / ".join(_gflops(d[k].get("calibration", d.get("calibration", ""))) for k in GA_LABELS),
            )
        )
        text = f"seed {who}: screened GA matched the plain GA: {n_g}/{n_p} = {n_g / n_p:.0%} evals"
        print(bar(reached and n_g <= 0.5 * n_p, text + (" (bar <= 50%)" if reached else " - not reached")))
    if rows:
        table(
            "plain GA vs GCN-screened GA: evaluations (cheap + full) and wall time to the plain GA's best "
            "full-score held-out loss",
            (
                "seed",
                "plain best",
                "plain evals",
                "plain s",
                "gcn best",
                "gcn evals",
                "gcn s",
                "evals ratio",
                "time ratio",
                "best at half plain's evals: plain / gcn",
                "GFLOP/s plain / gcn",
            ),
            rows,
        )
    rows = []
    for path in sorted(RESULTS.glob("predictors_nao_*.json")):
        d = json.loads(path.read_text())
        u, n = d["uniform"], d["nao"]
        diff, se, only_u, only_n = paired(u["correct"], n["correct"]) if "correct" in n else (0, 0, 0, 0)
        rows.append(
            (
                path.stem[-1],
                f"{u['test_acc']:.2%}",
                f"{n['test_acc']:.2%}",
                f"{diff:+.2%} ± {se:.2%}",
                f"{only_u}/{only_n}",
                f"{u['test_loss']:.4f}",
                f"{n['test_loss']:.4f}",
                f"{n['macs']:.3f}",
                sum(d["evaluated"].values()),
                f"{d['search_seconds']:.0f}",
            )
        )
        text = f"seed {path.stem[-1]}: NAO {n['test_acc']:.2%} >= uniform {u['test_acc']:.2%}"
        print(bar(n["test_acc"] >= u["test_acc"], text + " after the same KD fine-tune"))
    if rows:
        table(f"NAO vs uniform widths at {TARGET}x MACs, test accuracy after the same KD fine-tune",
              ("seed", "uniform acc", "NAO acc", "NAO - uniform ± se", "only U/only N right", "uniform loss",
               "NAO loss", "NAO MACs", "evals", "search s"),
              rows)  # fmt: skip
    print(f"bars missed: {len(FAILURES)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["truth", "ga", "nao", "table"], required=True)
    parser.add_argument("--truth", default=str(RESULTS / "predictors_truth.json"), help="truth: cache")
    parser.add_argument("--start", type=int, default=0, help="truth: first candidate index")
    parser.add_argument("--only-target", type=float, default=0.0, help="truth: only this MACs target")
    parser.add_argument("--repeats", type=int, default=10, help="truth: candidates fine-tuned twice")
    parser.add_argument("--ft-epochs", type=int, default=1, help="truth: fine-tune epochs per candidate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", type=int, default=30, help="truth: candidates in this part")
    parser.add_argument("--splits", type=int, default=6, help="table: folds (3 per repeat)")
    parser.add_argument("--subset", type=int, default=0, help="truth: training images per fine-tune (0: all)")
    parser.add_argument("--generations", type=int, default=8, help="ga: plain GA generations")
    parser.add_argument(
        "--screen-explore",
        type=float,
        default=GeneticConfig.screen_explore,
        help="ga: random share of the picks",
    )
    parser.add_argument("--screen-pool", type=int, default=GeneticConfig.screen_pool, help="ga: pool x pop")
    parser.add_argument("--screen-trust", type=float, default=GeneticConfig.screen_trust,
                        help="ga: online Kendall τ the screen needs (-1: the ungated screen)")  # fmt: skip
    parser.add_argument("--predictor-loss", default=GeneticConfig.predictor_loss, help="ga: mse / rank")
    parser.add_argument("--predictor-features", default=GeneticConfig.predictor_features,
                        help="ga: first / extended")  # fmt: skip
    parser.add_argument("--tag", default="", help="ga / nao: suffix of the results file (a variant)")
    parser.add_argument("--reuse-plain", action="store_true", help="ga: the plain GA of an earlier run")
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
    if args.part == "truth":
        ctx = {"base": base, "x": x, "graph": graph, "train": train, "held": held, "val_size": VAL_SIZE,
               "data": DATA}  # fmt: skip
        run_truth(ctx, SearchSpace(base, x, graph, scores), Path(args.truth), args)
        print_calibration("end")
        return 0
    run = {"ga": part_ga, "nao": part_nao}[args.part]
    data = run(args, base, x, graph, scores, train, held, test)
    data["calibration"] = calibration
    data["seconds"] = time.perf_counter() - started
    variant = (
        f"pool {args.screen_pool}, explore {args.screen_explore:g}, trust {args.screen_trust:g}, "
        f"{args.predictor_features}/{args.predictor_loss}"
    )
    data.update(seed=args.seed, variant=variant, screen_explore=args.screen_explore,
                screen_pool=args.screen_pool, screen_trust=args.screen_trust)  # fmt: skip
    name = f"predictors_{args.part}_{args.seed}{args.tag}.json"
    write_json(RESULTS / name, data)
    print_calibration("end")
    print(f"wrote {RESULTS / name} ({data['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
