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
  ``--screen-keep`` of them scored (a quarter), half of those at random (``--screen-explore``), only
  while the predictor's online Kendall τ passes ``--screen-trust`` (else the generation is a plain
  probe); ``--reuse-plain`` takes the plain GA from the seed's earlier results file (scores are
  deterministic; generation 0 is checked).
  Bar: the screened GA reaches the plain GA's best fitness with <= 50% of its evaluations.
* gafinal: the plain GA with ``--finalists``; its best full-scored candidate and its finalist winner, each
  fine-tuned like NAO's pick, beside uniform (no bar; whether the finalist stage helps the GA too).
* amc / n2n: plain AMC (N2N) vs the same with ``predictor="gcn"`` (library defaults), same seed and
  ``--episodes`` scored candidates (N2N: shrink students, plus a third as many removal ones): best reward,
  when it was found, the last quarter's mean reward.
* nao: NAO (16 initial, ``--rounds`` rounds; the ``--finalists`` best and uniform distilled for
  ``--final-kd-steps`` batches, the best after it kept) vs uniform widths, both fine-tuned 3 epochs by
  KD with ``--ft-seeds`` fine-tune seeds (the same seeds for both), mean test accuracy with the paired
  standard error over the 1,000 test images x fine-tunes (the test split cannot grow: mnist5k's fixed
  4,000/1,000 split, 500 of the 4,000 held out for the search). Bar: NAO >= uniform on each seed.
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
from _predictor_tables import FAILURES, RESULTS, TARGET, correct_bits, print_tables
from _predictor_truth import run_truth

import netsculpt as ns
from netsculpt.fileio import write_json
from netsculpt.importance import get_criterion
from netsculpt.search import GeneticConfig, NAOConfig, SearchSpace, finetune_pruned, search_widths
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate

DATA = {"resize": 32, "channels": 3}
VAL_SIZE = 500


def setup(args: argparse.Namespace):
    sys.path.insert(0, str(Path(__file__).parent))
    from search import baseline  # the baseline of benchmarks/search.py (4 epochs; committed since 2026-12-06)

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
        "eval_batches": args.eval_batches,
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
                screen_keep=args.screen_keep,
                screen_explore=args.screen_explore,
                screen_pool=args.screen_pool,
                screen_trust=args.screen_trust,
                screen_trust_rounds=args.screen_trust_rounds,
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


def part_rl(args, base, x, graph, scores, train, held, test) -> dict:
    """Plain vs GCN-screened AMC (``--part amc``) or N2N (``--part n2n``), same seed and number of scored
    candidates (AMC episodes; N2N students, the shrink stage screened): the best reward found, when, and
    the last quarter's mean reward."""
    from netsculpt.search.amc import AMCConfig
    from netsculpt.search.n2n import N2NConfig

    out: dict = {}
    earlier = RESULTS / f"predictors_{args.part}_{args.seed}.json"
    if args.reuse_plain and earlier.exists():  # both are deterministic per seed: the plain run repeats
        out["plain"] = {**json.loads(earlier.read_text())["plain"], "reused": True}
    for label, extra in (("plain", {}), ("gcn", {"predictor": "gcn"})):
        if label in out:
            continue
        common = {"criterion": "l1", "eval_batches": 2, "full_batches": 4, "seed": args.seed, **extra}
        if args.part == "amc":
            config = AMCConfig(episodes=args.episodes, warmup=args.episodes // 4, **common)
        else:
            config = N2NConfig(remove_episodes=args.episodes // 3, shrink_episodes=args.episodes,
                               kd_steps=args.kd_steps, **common)  # fmt: skip
        calibration = str(print_calibration(label))
        start = time.perf_counter()
        result = search_widths(base, x, args.part, f"macs={TARGET}", train, held, config, graph=graph,
                               scores=scores)  # fmt: skip
        episodes = result.history["episodes" if args.part == "amc" else "students"]
        rewards = [e["reward"] for e in episodes]
        out[label] = {
            "best_reward": max(rewards),
            "best_reward_at": int(np.argmax(rewards)) + 1,
            "mean_last_quarter": float(np.mean(rewards[-len(rewards) // 4 :])),
            "final_full": result.plan.meta.get("estimate"),
            "evaluated": result.evaluated,
            "episodes": len(episodes),
            "seconds": time.perf_counter() - start,
            "calibration": calibration,
            "predictor": result.history.get("predictor", {}).get("probes"),
        }
        print(f"  {label}: best reward {max(rewards):.4f} (episode {out[label]['best_reward_at']}), mean of "
              f"the last quarter {out[label]['mean_last_quarter']:.4f}, {result.evaluated}, "
              f"{out[label]['seconds']:.0f} s", flush=True)  # fmt: skip
    return out


def finetuned(args, base, x, graph, held, test, plans: dict) -> dict:
    """Each plan fine-tuned ``--ft-seeds`` times (fine-tune seeds 0..n-1, the same for every plan: paired),
    test accuracy and loss per fine-tune and their means. Uniform's fine-tunes do not depend on the search
    seed, so they are cached once per fine-tune seed."""
    out: dict = {}
    base_macs = ns.measure(base, x, latency=False).macs
    for label, plan in plans.items():
        runs = []
        for ft_seed in range(args.ft_seeds):
            cached = Path(args.cache) / f"predictors_uniform_e{args.finetune_epochs}_ft{ft_seed}.json"
            if label == "uniform" and cached.exists():
                runs.append(json.loads(cached.read_text()))
                continue
            model, (acc, loss) = finetune(base, plan, x, graph, args.finetune_epochs, ft_seed, held, test)
            macs = ns.measure(model, x, latency=False).macs / base_macs
            bits = correct_bits(model, test)
            runs.append(
                {"test_acc": acc, "test_loss": loss, "macs": macs, "correct": bits, "ft_seed": ft_seed}
            )
            if label == "uniform":
                write_json(cached, runs[-1])
        out[label] = {
            "test_acc": float(np.mean([r["test_acc"] for r in runs])),
            "test_loss": float(np.mean([r["test_loss"] for r in runs])),
            "macs": runs[0]["macs"],
            "correct": "".join(r["correct"] for r in runs),  # paired image by image, fine-tune by fine-tune
            "runs": runs,
            "estimate": plan.meta.get("estimate"),
        }
        accs = ", ".join(f"{r['test_acc']:.2%}" for r in runs)
        print(f"  {label}: test {out[label]['test_acc']:.2%} mean of {accs} ({runs[0]['macs']:.3f}x MACs)",
              flush=True)  # fmt: skip
    return out


def uniform_plan(space: SearchSpace):
    return space.plan(space.fit(np.ones(len(space)), "macs", TARGET))


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
        finalists=args.finalists,
        final_kd_steps=args.final_kd_steps,
    )
    start = time.perf_counter()
    result = search_widths(base, x, "nao", f"macs={TARGET}", train, held, config, graph=graph, scores=scores)
    seconds = time.perf_counter() - start
    rounds = [{k: r[k] for k in ("round", "best", "pool", "predictor")} for r in result.history["rounds"]]
    out = {"search_seconds": seconds, "evaluated": result.evaluated, "widths": list(result.widths.values()),
           "rounds": rounds, "final": result.history.get("final"), "finalists": args.finalists}  # fmt: skip
    plans = {"uniform": uniform_plan(SearchSpace(base, x, graph, scores)), "nao": result.plan}
    return out | finetuned(args, base, x, graph, held, test, plans)


def part_gafinal(args, base, x, graph, scores, train, held, test) -> dict:
    """The plain GA (the ga part's settings) with finalists: its best full score and its finalist winner
    each fine-tuned like NAO's pick, beside uniform (no bar: does the finalist stage help the GA too?)."""
    config = GeneticConfig(criterion="l1", eval_batches=2, full_batches=4, seed=args.seed, pop_size=args.pop,
                           elite=args.pop // 4, generations=args.generations, finalists=args.finalists,
                           final_kd_steps=args.final_kd_steps)  # fmt: skip
    start = time.perf_counter()
    result = search_widths(base, x, "genetic", f"macs={TARGET}", train, held, config, graph=graph,
                           scores=scores)  # fmt: skip
    seconds = time.perf_counter() - start
    rows = result.history["final"]["finalists"]
    space = SearchSpace(base, x, graph, scores)
    best_full = rows[0]  # the finalists are listed best full score first
    plans = {"uniform": uniform_plan(space),
             "best_full": space.plan(np.array(list(best_full["widths"].values()))),
             "finalist": result.plan}  # fmt: skip
    if best_full["winner"]:
        plans.pop("finalist")  # the same widths: one set of fine-tunes
    out = {"search_seconds": seconds, "evaluated": result.evaluated, "final": result.history["final"]}
    return out | finetuned(args, base, x, graph, held, test, plans)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["truth", "ga", "nao", "gafinal", "amc", "n2n", "table"],
                        required=True)  # fmt: skip
    parser.add_argument("--episodes", type=int, default=60,
                        help="amc: episodes; n2n: shrink students (+ a third as many removal)")  # fmt: skip
    parser.add_argument("--kd-steps", type=int, default=20, help="n2n: distillation batches per student")
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
    parser.add_argument("--eval-batches", type=int, default=2,
                        help="ga: held-out batches per cheap score (4: all 500; cheap = full)")  # fmt: skip
    parser.add_argument(
        "--screen-explore",
        type=float,
        default=GeneticConfig.screen_explore,
        help="ga: random share of the picks",
    )
    parser.add_argument("--screen-keep", type=float, default=0.25, help="ga: share of the pool scored")
    parser.add_argument("--screen-pool", type=int, default=GeneticConfig.screen_pool, help="ga: pool x pop")
    parser.add_argument("--screen-trust", type=float, default=GeneticConfig.screen_trust,
                        help="ga: online Kendall τ the screen needs (-1: the ungated screen)")  # fmt: skip
    parser.add_argument("--screen-trust-rounds", type=int, default=GeneticConfig.screen_trust_rounds,
                        help="ga: rounds whose mean τ the gate reads")  # fmt: skip
    parser.add_argument("--random-screen", action="store_true",
                        help="ga: control, predictions replaced by seeded random numbers")  # fmt: skip
    parser.add_argument("--predictor-loss", default=GeneticConfig.predictor_loss, help="ga: mse / rank")
    parser.add_argument("--predictor-features", default=GeneticConfig.predictor_features,
                        help="ga: first / extended")  # fmt: skip
    parser.add_argument("--tag", default="", help="ga / nao: suffix of the results file (a variant)")
    parser.add_argument("--reuse-plain", action="store_true", help="ga: the plain GA of an earlier run")
    parser.add_argument("--rounds", type=int, default=6, help="nao: rounds")
    parser.add_argument("--pop", type=int, default=16, help="ga population / nao initial candidates")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--ft-seeds", type=int, default=3, help="nao: fine-tunes per model (seeds 0..n-1)")
    parser.add_argument("--finalists", type=int, default=4, help="nao: finalists distilled (0: off)")
    parser.add_argument("--final-kd-steps", type=int, default=55, help="nao: batches per finalist")
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
    if args.random_screen:  # the control: same pool, same share scored, picks at random
        from netsculpt.predictors import screen

        rng = np.random.default_rng(args.seed)
        screen.Predictor.predict = lambda self, counts: rng.random(len(counts))  # type: ignore[method-assign]
    run = {"ga": part_ga, "nao": part_nao, "gafinal": part_gafinal, "amc": part_rl, "n2n": part_rl}[args.part]
    data = run(args, base, x, graph, scores, train, held, test)
    data["calibration"] = calibration
    data["seconds"] = time.perf_counter() - started
    variant = (
        f"pool {args.screen_pool}, keep {args.screen_keep:g}, explore {args.screen_explore:g}, "
        f"trust {args.screen_trust:g} x{args.screen_trust_rounds}{' random' if args.random_screen else ''}, "
        f"{args.predictor_features}/{args.predictor_loss}"
        + (f", cheap on {args.eval_batches} batches" if args.eval_batches != 2 else "")
    )
    data.update(seed=args.seed, variant=variant, screen_explore=args.screen_explore,
                screen_pool=args.screen_pool, screen_keep=args.screen_keep,
                screen_trust=args.screen_trust)  # fmt: skip
    name = f"predictors_{args.part}_{args.seed}{args.tag}.json"
    write_json(RESULTS / name, data)
    print_calibration("end")
    print(f"wrote {RESULTS / name} ({data['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
