"""The weight-compression recipe stages: ``cluster`` (k-means or DKM palettes, fixed or searched bits per
layer) and ``sparsify`` (masked training: one-shot, cubic ramp or GaP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.pipeline.recipe import ClusterStage, SparsifyStage
from netsculpt.pipeline.stages import RunContext, stage, train_config


@stage("cluster")
def cluster(ctx: RunContext, cfg: ClusterStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    """Palettize weights (DKM trains with the recipe's data; k-means is post-training)."""
    from netsculpt.weights import cluster_model, config_for

    fields: dict[str, Any] = {"bits": cfg.bits, "seed": ctx.recipe.seed, **cfg.options}
    if cfg.method == "dkm":
        from netsculpt.train import TrainConfig

        train = {"epochs": max(cfg.epochs, 1), "seed": ctx.recipe.seed, **({"lr": cfg.lr} if cfg.lr else {})}
        fields["train"] = TrainConfig.preset("finetune", **train)
    if cfg.bits == "auto":
        return _cluster_auto(ctx, cfg, model, out, fields)
    config = config_for(cfg.method, **fields)
    clustered = cluster_model(
        model, config, ctx.train_loader, ctx.test_loader, out_dir=out / "checkpoints", resume=True
    )
    return clustered, {"method": cfg.method, "bits": cfg.bits}


def _cluster_auto(ctx: RunContext, cfg: ClusterStage, model: nn.Module, out: Path, fields: dict) -> tuple:
    """``bits: auto``: bits per layer searched under ``budget_bytes`` on 500 held-out training samples."""
    from torch.utils.data import DataLoader

    from netsculpt.search.holdout import default_val_size, split_holdout
    from netsculpt.weights import config_for
    from netsculpt.weights.haq import BitSearchConfig
    from netsculpt.weights.mixed_cluster import cluster_auto

    if cfg.budget_bytes is None:
        raise ConfigError("cluster.bits: auto needs cluster.budget_bytes (the packed file size to fit)")
    dataset = ctx.train_loader.dataset
    _, held = split_holdout(dataset, default_val_size(len(dataset)), ctx.recipe.seed)
    config = config_for(cfg.method, **{**fields, "bits": 8})
    search = BitSearchConfig(method=cfg.bit_search, seed=ctx.recipe.seed)
    held_loader = DataLoader(held, batch_size=ctx.train_loader.batch_size)
    clustered, result = cluster_auto(
        model, config, cfg.budget_bytes, ctx.train_loader, held_loader, ctx.test_loader, search,
        state_dir=out / "bit_search", resume=True, out_dir=out / "checkpoints",
    )  # fmt: skip
    measured = result.history["measured_bytes"]
    return clustered, {"method": cfg.method, "bits": "auto", "layer_bits": result.bits,
                       "budget_bytes": cfg.budget_bytes, "bytes": measured}  # fmt: skip


@stage("sparsify")
def sparsify(ctx: RunContext, cfg: SparsifyStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    """Masked training (one-shot, cubic ramp or GaP) with the recipe's data; masks folded in at the end."""
    from netsculpt.sparsity import SparsityConfig, skip_filter
    from netsculpt.sparsity import sparsify as run_sparsify

    skip = skip_filter(model, cfg.skip, "sparsify.skip")
    if cfg.early_stop is not None:
        raise ConfigError("sparsify: early_stop is not supported (its phases run to a fixed schedule)")
    sparse = SparsityConfig(
        sparsity=cfg.sparsity, pattern=cfg.pattern, block=cfg.block, scope=cfg.scope, method=cfg.method,
        schedule=cfg.schedule, partitions=cfg.partitions, restart_lr=cfg.restart_lr,
        filter_fn=skip,
    )  # fmt: skip
    config = train_config(ctx, cfg)
    result = run_sparsify(model, sparse, ctx.train_loader_for(config), ctx.test_loader, config,
                          out_dir=out / "phases", resume=True)  # fmt: skip
    return model, {"sparsity": sparse.to_dict(), "train": config.to_dict(), **result.to_dict()}
