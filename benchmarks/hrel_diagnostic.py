"""Why does HRel keep uninformative LeNet-5 filters? Estimator variants measured on held-out TRAINING digits.

Baselines of seeds 0..``--bases``-1 are trained (preset ``lenet5_mnist5k``, cached) on 3,500 of the 4,000
mnist5k training digits; 1,024 of those 3,500 are the calibration images; every variant's scores prune a
copy to conv widths (2, 3) and, globally, to 0.3x MACs, and the table gives the accuracy on the other 500
training digits right after pruning (no fine-tuning), mean over bases. The test split is never loaded.
Activations are captured once per base at every candidate site, so the variants only cost linear algebra.

    PYTHONPATH=src python benchmarks/hrel_diagnostic.py [--bases 5] [--verbose]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _calibration import print_calibration
from _criteria_bench import cached_baseline, set_threads
from torch.utils.data import DataLoader

import netsculpt as ns
from netsculpt.allocate import widths_plan
from netsculpt.allocate.targets import target_plan
from netsculpt.data import load_dataset, training_loader
from netsculpt.importance import get_criterion
from netsculpt.importance.hrel import renyi_entropy
from netsculpt.search.holdout import split_holdout
from netsculpt.train import TrainConfig, evaluate, train

WIDTHS = {"conv1": 2, "conv2": 3}
# group id -> (pre-activation, post-ReLU, after pooling) module names in LeNet-5
SITES = {
    "conv1": ("conv1", "relu1", "pool1"),
    "conv2": ("conv2", "relu2", "pool2"),
    "fc1": ("fc1", "relu3", "relu3"),
}


def capture(model: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every site's output for all calibration images (LeNet-5 is small enough to keep them)."""
    out: dict[str, list[torch.Tensor]] = {}
    mods = dict(model.named_modules())
    names = {n for sites in SITES.values() for n in sites}
    handles = [
        mods[n].register_forward_hook(lambda _m, _a, y, n=n: out.setdefault(n, []).append(y.detach()))
        for n in names
    ]
    with torch.no_grad():
        for chunk in images.split(256):
            model(chunk)
    for h in handles:
        h.remove()
    return {n: torch.cat(v) for n, v in out.items()}


def gauss(dist: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    return torch.exp(-dist.square() / (2 * width.reshape(-1, 1, 1) ** 2))


def mi_from_gram(gram: torch.Tensor, same: torch.Tensor, alpha: float) -> torch.Tensor:
    return renyi_entropy(gram, alpha) + renyi_entropy(same, alpha) - renyi_entropy(gram * same, alpha)


def alignment_width(flat: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """The width maximising kernel-target alignment <K, L> / (|K| |L|) of the whole layer's maps (N, D)."""
    d = torch.cdist(flat[None], flat[None])[0]
    if not bool((d > 0).any()):
        return torch.tensor(1.0, dtype=d.dtype)  # identical maps: any width gives an all-ones Gram
    grid = torch.logspace(-2, 1.5, 120, dtype=d.dtype) * d[d > 0].median()
    best, best_w = -1.0, grid[0]
    for w in grid:
        k = torch.exp(-d.square() / (2 * w**2))
        a = float((k * same).sum() / (k.norm() * same.norm()))
        if a > best:
            best, best_w = a, w
    return best_w


def hrel_scores(
    acts: dict[str, torch.Tensor],
    labels: torch.Tensor,
    *,
    site: int = 1,
    width: str = "median",
    batch: int = 64,
    alpha: float = 1.01,
) -> dict[str, np.ndarray]:
    """Variant estimator. ``site``: 0 pre-activation, 1 post-ReLU, 2 after pooling. ``width``: "median"
    (per filter), "layer-median" (the median distance between single maps over the whole layer, shared),
    "layer-align" (shared, chosen by kernel alignment of the whole layer with the labels, as the HRel
    authors do), "filter-align" (per filter, by alignment)."""
    scores = {}
    for gid, names in SITES.items():
        x = acts[names[site]].double()
        total = torch.zeros(x.shape[1], dtype=torch.float64)
        count = 0
        for start in range(0, x.shape[0] - batch + 1, batch):
            xb, yb = x[start : start + batch], labels[start : start + batch]
            n, c = xb.shape[:2]
            feats = xb.reshape(n, c, -1).transpose(0, 1)
            dist = torch.cdist(feats, feats, compute_mode="donot_use_mm_for_euclid_dist")
            same = (yb[:, None] == yb[None]).double()
            if width == "median":
                off = dist.masked_fill(dist <= 0, float("nan")).reshape(c, -1)
                w = torch.nan_to_num(off.nanmedian(-1).values, nan=1.0).clamp_min(1e-30)
            elif width == "layer-median":
                pos = dist[dist > 0]
                w = torch.full((c,), float(pos.median()) if pos.numel() else 1.0, dtype=torch.float64)
            elif width in ("layer-align", "layer-align-scaled"):
                w = alignment_width(xb.reshape(n, -1), same)
                w = (w / np.sqrt(c) if width == "layer-align-scaled" else w).expand(c)
            elif width == "filter-align":
                w = torch.stack([alignment_width(feats[i], same) for i in range(c)])
            else:
                raise ValueError(width)
            total += mi_from_gram(gauss(dist, w), same, alpha) * n
            count += n
        scores[gid] = (total / count).numpy()
    return scores


def dead_fraction(acts: dict[str, torch.Tensor], gid: str) -> np.ndarray:
    """Fraction of images on which a filter's rectified map is all zero."""
    x = acts[SITES[gid][1]]
    return (x.reshape(x.shape[0], x.shape[1], -1).amax(-1) <= 0).double().mean(0).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", type=int, default=5)
    parser.add_argument("--calib", type=int, default=1024, help="calibration images (from the 3,500)")
    parser.add_argument("--cache", default="runs/bench/criteria_oneshot_val")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="per-filter table for base 0, conv1")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    print_calibration("start")
    train_split, _ = load_dataset("mnist5k", seed=0)
    rest, held = split_holdout(train_split, 500, 0)
    val = DataLoader(held, batch_size=500)
    gen = torch.Generator().manual_seed(1)
    idx = torch.randperm(len(rest), generator=gen)[: args.calib]
    images = torch.stack([rest[int(i)][0] for i in idx])
    labels = torch.tensor([int(rest[int(i)][1]) for i in idx])
    calib = list(zip(images.split(64), labels.split(64), strict=True))
    x = images[:1]
    preset = TrainConfig.preset("lenet5_mnist5k")

    variants: dict[str, Callable[[dict], dict]] = {
        "current (post-ReLU, median/filter, b64)": lambda a: hrel_scores(a, labels),
        "pre-activation": lambda a: hrel_scores(a, labels, site=0),
        "after pool": lambda a: hrel_scores(a, labels, site=2),
        "b128": lambda a: hrel_scores(a, labels, batch=128),
        "b256": lambda a: hrel_scores(a, labels, batch=256),
        "alpha 2": lambda a: hrel_scores(a, labels, alpha=2.0),
        "layer-median width": lambda a: hrel_scores(a, labels, width="layer-median"),
        "layer-median, pre-act": lambda a: hrel_scores(a, labels, width="layer-median", site=0),
        "layer-median, pool": lambda a: hrel_scores(a, labels, width="layer-median", site=2),
        "layer-median, b128": lambda a: hrel_scores(a, labels, width="layer-median", batch=128),
        "layer-align (authors)": lambda a: hrel_scores(a, labels, width="layer-align"),
        "layer-align, pre-act (authors)": lambda a: hrel_scores(a, labels, width="layer-align", site=0),
        "layer-align / sqrt(C)": lambda a: hrel_scores(a, labels, width="layer-align-scaled"),
        "filter-align": lambda a: hrel_scores(a, labels, width="filter-align"),
    }
    results: dict[str, list[tuple[float, float]]] = {}
    for seed in range(args.bases):

        def fit(model: torch.nn.Module, seed: int = seed) -> None:
            loader = training_loader(rest, batch_size=preset.batch_size, seed=seed, augment=True)
            train(model, loader, val, preset.replace(seed=seed))

        path = Path(args.cache) / f"lenet5_rest_seed{seed}.safetensors"
        base = cached_baseline(path, lambda: ns.create_model("lenet5"), fit, seed)[0].eval()
        graph = ns.trace(base, x)
        acts = capture(base, images)

        def judge(scores: dict, base=base, graph=graph) -> tuple[float, float]:
            w = ns.apply_plan(copy.deepcopy(base), widths_plan(graph, scores, WIDTHS), x, graph=graph)
            plan = target_plan(base, x, graph, scores, ns.Target(macs=0.3))
            m = ns.apply_plan(copy.deepcopy(base), plan, x, graph=graph)
            return evaluate(w, val)[0], evaluate(m, val)[0]

        for name in ("l1", "chip", "random", "hrank"):
            results.setdefault(name, []).append(judge(get_criterion(name).score(base, graph, calib)))
        for name, fn in variants.items():
            scores = fn(acts)
            results.setdefault(name, []).append(judge(scores))
            if args.verbose and seed == 0 and name.startswith("current"):
                l1 = base.conv1.weight.detach().abs().sum((1, 2, 3)).numpy()
                print("conv1 filter: dead fraction, l1, hrel")
                for i in np.argsort(-scores["conv1"]):
                    print(
                        f"  {i:>3} {dead_fraction(acts, 'conv1')[i]:.2f} {l1[i]:.2f} {scores['conv1'][i]:.3f}"
                    )
        print(f"base {seed}: held-out {evaluate(base, val)[0]:.2%}", flush=True)
    print(f"\n{'variant':<40} {'widths (2,3)':>13} {'0.3x MACs':>10}   per base (2,3)")
    for name, rs in results.items():
        w = [r[0] for r in rs]
        m = [r[1] for r in rs]
        print(
            f"{name:<40} {statistics.fmean(w):>13.2%} {statistics.fmean(m):>10.2%}   "
            + " ".join(f"{a:.0%}" for a in w)
        )
    print_calibration("end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
