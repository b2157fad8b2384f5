"""Ground truth for the predictor benchmark: candidates that span a real range of quality, each
fine-tuned the same way, cached one by one so parts run in the background accumulate (issue 21).

Why this shape: the first measurement fine-tuned each candidate for 1 epoch on 800 images (25-80 %
held-out accuracy, the ranking mostly noise). Here every candidate gets the same KD fine-tune — same
seed, same images in the same order — long enough to recover, and the ground truth is the held-out
*loss* (continuous; accuracy on 500 images moves in 0.2 pp steps). Candidates come from several MACs
targets and from three width generators (uniform draws, bimodal "keep or cut" draws, smooth depth
ramps), so the set spans quality a search can actually choose between. A second fine-tune seed on some
candidates measures the ground truth's own repeatability: the ceiling of any predictor's τ.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import netsculpt as ns
from netsculpt.fileio import write_json
from netsculpt.search import finetune_pruned
from netsculpt.search.evaluator import adapt_batchnorm_, sample_inputs, take_batches
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate

TARGETS = (0.5, 0.3, 0.5, 0.7)  # half the candidates at the bar's 0.5x MACs
SHAPES = ("uniform", "bimodal", "ramp")


def candidate_ratios(space: Any, index: int) -> tuple[np.ndarray, float, str]:
    """Keep ratios, MACs target and generator of candidate ``index`` (deterministic in the index)."""
    rng = np.random.default_rng([21, index])
    low = space.floors / space.sizes
    target = TARGETS[index % len(TARGETS)]
    shape = SHAPES[(index // len(TARGETS)) % len(SHAPES)]
    n = len(space)
    if shape == "uniform":
        u = rng.uniform(0.0, 1.0, n)
    elif shape == "bimodal":  # most groups near their floor or near full: strongly non-uniform
        u = rng.beta(0.3, 0.3, n)
    else:  # a smooth profile along depth: prune the early or the late layers harder
        slope = rng.uniform(-1.0, 1.0)
        u = np.clip(0.5 + slope * (np.linspace(-0.5, 0.5, n)) * 2 + rng.normal(0, 0.1, n), 0, 1)
    return low + (1.0 - low) * u, target, shape


def finetune_score(ctx: dict, plan: Any, seed: int, epochs: int, subset: int) -> tuple[float, float]:
    """(held-out accuracy, held-out loss) after a KD fine-tune on the first ``subset`` training images,
    shuffled by ``seed`` — identical for every candidate given the seed."""
    config = TrainConfig.preset("finetune", epochs=epochs, seed=seed)
    ft_train, _, _ = holdout_loaders(
        "mnist5k",
        val_size=ctx["val_size"],
        batch_size=config.batch_size,
        augment=config.augment,
        **ctx["data"],
    )
    data = torch.utils.data.Subset(ft_train.dataset, range(subset)) if subset else ft_train.dataset
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        data, batch_size=config.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    model = ns.apply_plan(ctx["base"], plan, ctx["x"], graph=ctx["graph"])
    finetune_pruned(model, ctx["base"], loader, ctx["held"], config)
    return evaluate(model, ctx["held"])


def run_truth(ctx: dict, space: Any, path: Path, args: Any) -> dict:
    """Add candidates ``args.start`` .. ``args.start + args.candidates - 1`` to the cache at ``path``
    (skipping the ones it holds, and with ``args.only_target`` those at other MACs targets), writing it
    after each; the first ``args.repeats`` get a second fine-tune seed too."""
    data = json.loads(path.read_text()) if path.exists() else {"candidates": {}}
    setting = {"epochs": args.ft_epochs, "subset": args.subset, "targets": list(TARGETS)}
    if data.setdefault("setting", setting) != setting:
        raise SystemExit(f"{path} was made with {data['setting']}, not {setting}: use another --truth file")
    cands = data["candidates"]
    bn = sample_inputs(ctx["train"], 2, 0)
    cheap_batches = take_batches(ctx["held"], 2, "held-out")
    for i in range(args.start, args.start + args.candidates):
        if args.only_target and TARGETS[i % len(TARGETS)] != args.only_target:
            continue  # e.g. more candidates at the bar's 0.5x only: same generator, other indices skipped
        row = cands.get(str(i))
        want_repeat = i < args.repeats
        if row is not None and (not want_repeat or "repeat" in row):
            continue
        start = time.perf_counter()
        ratios, target, shape = candidate_ratios(space, i)
        counts = space.fit(ratios, "macs", target)
        plan = space.plan(counts)
        if row is None:
            pruned = ns.apply_plan(ctx["base"], plan, ctx["x"], graph=ctx["graph"])
            adapt_batchnorm_(pruned, bn)
            cheap_acc, cheap_loss = evaluate(pruned, cheap_batches)
            acc, loss = finetune_score(ctx, plan, 0, args.ft_epochs, args.subset)
            row = {
                "widths": [int(c) for c in counts],
                "target": target,
                "shape": shape,
                "macs": float(space.cost(counts, "macs")),
                "cheap_loss": cheap_loss,
                "cheap_acc": cheap_acc,
                "ft_acc": acc,
                "ft_loss": loss,
            }
        if want_repeat:
            acc2, loss2 = finetune_score(ctx, plan, 1, args.ft_epochs, args.subset)
            row["repeat"] = {"ft_acc": acc2, "ft_loss": loss2}
        cands[str(i)] = row
        write_json(path, data)
        print(
            f"  candidate {i} ({shape}, {target}x): cheap loss {row['cheap_loss']:.3f}, fine-tuned "
            f"held-out loss {row['ft_loss']:.4f} acc {row['ft_acc']:.2%}"
            + (f" | seed 1: {row['repeat']['ft_loss']:.4f}" if "repeat" in row else "")
            + f" ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    return data
