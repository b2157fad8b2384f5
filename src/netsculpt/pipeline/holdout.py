"""The loaders a training stage gets when its recipe asks for early stopping.

``early_stop: {holdout: 500, patience: 3}`` on a baseline / finetune / distill stage carves ``holdout``
images (stratified by class, seeded by the recipe's seed) out of the *training* split: the stage trains on
the rest and stops on those. The test split the run reports is never part of the decision.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader

from netsculpt.errors import ConfigError
from netsculpt.pipeline.recipe import TrainSection


def stage_loaders(ctx: Any, cfg: TrainSection, config: Any) -> tuple[Any, Any, Any]:
    """``(train_loader, val_loader, early_stopping)``; the last two are None without ``early_stop``."""
    stop = cfg.early_stop
    if stop is None:
        return ctx.train_loader_for(config), None, None
    from netsculpt.data import ImageDataset, training_loader
    from netsculpt.search.holdout import split_holdout
    from netsculpt.train import EarlyStopping

    dataset = ctx.train_loader.dataset
    if getattr(ctx, "task", None) is not None:  # dense: canvases held out of the training canvases
        from netsculpt.pipeline.dense import held_out_loaders

        train_loader, held_loader = held_out_loaders(ctx, stop.holdout, "early_stop.holdout")
        rule = EarlyStopping(patience=stop.patience, min_delta=stop.min_delta, min_epochs=stop.min_epochs,
                             restore_best=stop.restore_best)  # fmt: skip
        return train_loader, held_loader, rule
    if not isinstance(dataset, ImageDataset):
        raise ConfigError(
            f"early_stop holds out part of the training split, which needs a classification image dataset; "
            f"{type(dataset).__name__} is not one: remove early_stop from this stage"
        )
    if stop.holdout >= len(dataset):
        raise ConfigError(
            f"early_stop.holdout={stop.holdout} leaves no training data ({len(dataset)} images); "
            "hold out fewer"
        )
    rest, held = split_holdout(dataset, stop.holdout, ctx.recipe.seed)
    batch = ctx.train_loader.batch_size
    train_loader = training_loader(rest, batch_size=batch, seed=ctx.recipe.seed, augment=bool(config.augment),
                                   shift=config.augment_shift)  # fmt: skip
    rule = EarlyStopping(patience=stop.patience, min_delta=stop.min_delta, min_epochs=stop.min_epochs,
                         restore_best=stop.restore_best)  # fmt: skip
    return train_loader, DataLoader(held, batch_size=max(batch, 256)), rule


def early_stop_info(cfg: TrainSection, result: Any) -> dict[str, Any]:
    """What a stage's ``stage.json`` records about early stopping (empty without it)."""
    if cfg.early_stop is None:
        return {}
    outcome = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
               "stopped_early": result.stopped_early}  # fmt: skip
    return {"early_stopping": {**cfg.early_stop.model_dump(), **outcome}}
