"""The ``grow`` and ``push`` recipe stages (Grow-Push-Prune, :mod:`netsculpt.gpp`); the prune is the
ordinary ``prune`` stage with ``criterion: gpp`` (and ``refit: true`` for the least-squares recovery)::

    stages:
      - grow: {layers: {conv2: 14}}          # or branches: {conv2: "1x1:4"} (a parallel 1x1 conv)
      - push: {epochs: 3, push_weight: 0.03}
      - prune: {criterion: gpp, widths: {conv1: 2, conv2: 3}, refit: true}
      - finetune: {preset: finetune, epochs: 3}
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from netsculpt.pipeline.holdout import early_stop_info, stage_loaders
from netsculpt.pipeline.recipe import GrowStage, PushStage
from netsculpt.pipeline.stages import RunContext, stage, train_config


@stage("grow")
def grow(ctx: RunContext, cfg: GrowStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    from netsculpt.gpp import grow as grow_model
    from netsculpt.gpp import grow_branch

    grown = grow_model(model, ctx.example, cfg.layers, seed=ctx.recipe.seed) if cfg.layers else model
    if cfg.branches:
        grown = grow_branch(
            grown, ctx.example, cfg.branches, seed=ctx.recipe.seed, inplace=grown is not model
        )
    return grown, {"layers": dict(cfg.layers), "branches": dict(cfg.branches)}


def push_layers(model: nn.Module, example: object) -> list[str]:
    """The modules whose outputs the gpp criterion scores (one per prunable channel group)."""
    from netsculpt.graph.channel_graph import trace
    from netsculpt.importance.site_choice import choose_sites

    sites = choose_sites(model, trace(model, example), "activation")
    return sorted({site.module for group in sites.values() for site in group})


@stage("push")
def push(ctx: RunContext, cfg: PushStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    from netsculpt.gpp import PushLoss
    from netsculpt.train import train

    layers = cfg.layers or push_layers(model, ctx.example)
    settings = (
        "push_weight",
        "cov_weight",
        "task_in_push",
        "momentum",
        "sparse_weight",
        "keep",
        "rest_weight",
        "shrink",
        "grid",
    )
    loss = PushLoss(layers, **{key: getattr(cfg, key) for key in settings})
    config = train_config(ctx, cfg)
    loader, val, stop = stage_loaders(ctx, cfg, config)
    result = train(model, loader, ctx.test_loader, config, out_dir=out / "checkpoints", resume=True,
                   loss_fn=loss, val_loader=val, early_stopping=stop)  # fmt: skip
    info = {"train": config.to_dict(), "push": loss.recipe(), "running": dict(loss.running),
            "history": result.history}  # fmt: skip
    return model, {**info, **early_stop_info(cfg, result)}
