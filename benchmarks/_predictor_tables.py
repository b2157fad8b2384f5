"""The printed tables of benchmarks/predictors.py: rank quality, plain vs screened GA, NAO vs uniform.

Split from predictors.py so each file keeps one job: that one runs the parts, this one reads their result
files (``benchmarks/results/predictors_*.json``) and prints the tables and bars.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from _predictor_rank import fresh_rows, noise_ceiling, rank_rows
from _tables import FAILURES, bar, table

from netsculpt.fileio import write_json
from netsculpt.search import SearchSpace

TARGET = 0.5
RESULTS = Path("benchmarks/results")
GA_LABELS = ("plain", "gcn")
BEST = "GCN, extended features, rank loss, 3 seeds"


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
        if "_b2" in path.stem:  # rerun on the committed baseline (docs/search.md, 2026-12-06)
            who += " [baseline 2]"
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
        seed = str(d.get("seed", path.stem.split("_")[2]))
        variant = path.stem.removeprefix(f"predictors_nao_{seed}")  # "" for the runs the bar reads
        rows.append(
            (
                seed + variant,
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
        text = f"seed {seed}: NAO {n['test_acc']:.2%} >= uniform {u['test_acc']:.2%}"
        if not variant:  # variants (ablations) are rows of the table, not bars
            print(bar(n["test_acc"] >= u["test_acc"], text + " after the same KD fine-tune"))
    if rows:
        table(f"NAO vs uniform widths at {TARGET}x MACs, test accuracy after the same KD fine-tune",
              ("seed", "uniform acc", "NAO acc", "NAO - uniform ± se", "only U/only N right", "uniform loss",
               "NAO loss", "NAO MACs", "evals", "search s"),
              rows)  # fmt: skip
    print_gafinal()
    print(f"bars missed: {len(FAILURES)}")


def print_gafinal() -> None:
    """The plain GA's best full score vs its finalist winner, each after the same fine-tunes (no bar)."""
    rows = []
    for path in sorted(RESULTS.glob("predictors_gafinal_*.json")):
        d = json.loads(path.read_text())
        u, best = d["uniform"], d["best_full"]
        pick = d.get("finalist", best)  # absent when the finalist stage kept the best full score
        diff, se, _, _ = paired(best["correct"], pick["correct"])
        rows.append((d["seed"], f"{u['test_acc']:.2%}", f"{best['test_acc']:.2%}", f"{pick['test_acc']:.2%}",
                     f"{diff:+.2%} ± {se:.2%}", "yes" if "finalist" not in d else "no",
                     f"{d['search_seconds']:.0f}"))  # fmt: skip
    if rows:
        table(f"genetic search at {TARGET}x MACs with finalists: test accuracy after the same KD fine-tunes",
              ("seed", "uniform", "GA best full score", "GA finalist winner", "winner - best full ± se",
               "same widths", "search s"), rows)  # fmt: skip
