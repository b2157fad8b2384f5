"""Recipes with ``early_stop``: the stage trains on the training split minus a held-out part and stops on
that part; the test split is only reported."""

from __future__ import annotations

import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.pipeline import holdout as holdout_module
from netsculpt.pipeline import parse_recipe, run_recipe

RECIPE = """
name: tiny_es
model: {name: lenet5}
data: {name: mnist5k, limit: 200}
baseline: {train: {preset: default, epochs: 1}}
stages:
  - prune: {criterion: l1, widths: {conv1: 4, conv2: 6}}
  - finetune: {epochs: 4, early_stop: {holdout: 40, patience: 1}}
outputs: {latency_runs: 2, report: false}
"""


def test_stage_stops_on_images_held_out_of_the_training_split(tmp_path, monkeypatch) -> None:
    seen: dict[str, torch.Tensor] = {}
    real = holdout_module.stage_loaders

    def spy(ctx, cfg, config):
        train_loader, val_loader, rule = real(ctx, cfg, config)
        if val_loader is not None:
            seen["train"] = ctx.train_loader.dataset.images
            seen["test"] = ctx.test_loader.dataset.images
            seen["held"] = val_loader.dataset.images
            seen["rest"] = train_loader.dataset.images
        return train_loader, val_loader, rule

    monkeypatch.setattr("netsculpt.pipeline.stages.stage_loaders", spy)
    results = run_recipe(parse_recipe(RECIPE), RECIPE, tmp_path)
    info = results["stages"][2]["info"]
    stop = info["early_stopping"]
    assert stop["holdout"] == 40 and 1 <= stop["best_epoch"] <= stop["epochs_run"] <= 4
    assert all("val_acc" in h for h in info["history"])
    # the held-out images are training images, the stage trained on the others, and none is a test image
    assert len(seen["held"]) == 40 and len(seen["rest"]) == len(seen["train"]) - 40

    def rows(x: torch.Tensor) -> set[bytes]:
        return {r.numpy().tobytes() for r in x.reshape(len(x), -1)}

    held, rest, train, test = (rows(seen[k]) for k in ("held", "rest", "train", "test"))
    assert held <= train and not held & rest and not held & test


def test_early_stop_is_refused_where_it_cannot_work(tmp_path) -> None:
    too_many = RECIPE.replace("holdout: 40", "holdout: 500")
    with pytest.raises(ConfigError, match="holdout=500"):
        run_recipe(parse_recipe(too_many), too_many, tmp_path / "a")
    with pytest.raises(ConfigError, match="patience"):
        parse_recipe(RECIPE.replace("patience: 1", "patience: 0"))
