"""The ``prune_depth`` recipe stage: remove residual blocks (and optionally fold) between other stages.

Block scores are computed on samples held out of the training split (``val_size``, default 500 or a
fifth of a smaller split), never on the test split the run reports.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.pipeline.recipe import PruneDepthStage
from netsculpt.pipeline.stages import RunContext, stage


@stage("prune_depth")
def prune_depth(ctx: RunContext, cfg: PruneDepthStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    from torch.utils.data import DataLoader

    from netsculpt.allocate import Target
    from netsculpt.depth import fold, plan_depth, remove_blocks
    from netsculpt.search.holdout import split_holdout

    dataset = ctx.train_loader.dataset
    val_size = cfg.val_size or max(1, min(500, len(dataset) // 5))
    if val_size >= len(dataset):
        raise ConfigError(f"prune_depth.val_size={val_size} leaves no training data ({len(dataset)} samples)")
    _, held = split_holdout(dataset, val_size, ctx.recipe.seed)
    held_out = DataLoader(held, batch_size=ctx.train_loader.batch_size or 64)
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
