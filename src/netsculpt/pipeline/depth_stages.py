"""The ``prune_depth`` and ``compound`` recipe stages: remove residual blocks (and optionally fold), or
scale depth x width x resolution together, between other stages.

Block scores are computed on samples held out of the training split (``val_size``, default 500 or a
fifth of a smaller split), never on the test split the run reports. ``compound`` changes the input size:
the run context's example, loaders and ``data.resize`` follow it, for this stage's measurements and every
later stage (on resume the runner re-applies it from the stage record).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.pipeline.recipe import CompoundStage, PruneDepthStage
from netsculpt.pipeline.stages import RunContext, stage


def _held_out(ctx: RunContext, val_size: int | None, kind: str) -> Any:
    from torch.utils.data import DataLoader

    from netsculpt.search.holdout import default_val_size, split_holdout

    dataset = ctx.train_loader.dataset
    val_size = val_size or default_val_size(len(dataset))
    if val_size >= len(dataset):
        raise ConfigError(f"{kind}.val_size={val_size} leaves no training data ({len(dataset)} samples)")
    _, held = split_holdout(dataset, val_size, ctx.recipe.seed)
    return DataLoader(held, batch_size=ctx.train_loader.batch_size or 64)


@stage("compound")
def compound(ctx: RunContext, cfg: CompoundStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    from netsculpt.allocate import Target
    from netsculpt.depth.compound import compound_scale

    result = compound_scale(
        model,
        ctx.example,
        target=Target(macs=cfg.macs),
        criterion=cfg.criterion,
        depth_criterion=cfg.depth_criterion,
        data=_held_out(ctx, cfg.val_size, "compound"),
        latency=cfg.latency,
    )
    ctx.set_resolution(result.resolution)
    with torch.no_grad():
        result.model.eval()(ctx.example)
    info = {
        "resolution": list(result.resolution),
        "depth": result.depth,
        "width": result.width,
        "macs": result.macs,
        "latency": result.latency,
        "removed": result.removed,
    }
    return result.model, info


@stage("prune_depth")
def prune_depth(ctx: RunContext, cfg: PruneDepthStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    from netsculpt.allocate import Target
    from netsculpt.depth import fold, plan_depth, remove_blocks

    held_out = _held_out(ctx, cfg.val_size, "prune_depth")
    target = Target(**cfg.target) if cfg.target else None
    plan = plan_depth(
        model,
        ctx.example,
        blocks=cfg.blocks,
        target=target,
        criterion=cfg.criterion,
        data=held_out,
        calib_batches=cfg.calib_batches,
    )
    small = remove_blocks(model, plan.blocks)
    if cfg.fold:
        small = fold(small, ctx.example)
    with torch.no_grad():
        small.eval()(ctx.example)
    return small, {"removed": [b["name"] for b in plan.blocks], "scores": plan.scores, "reached": plan.cost}
