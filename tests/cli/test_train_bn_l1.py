"""`netsculpt train --bn-l1` and the recipe's ``bn_l1`` reach TrainConfig; bad values name the flag/field."""

from __future__ import annotations

import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.pipeline import parse_recipe
from netsculpt.train import load_checkpoint

from .test_cli import run

RESNET = ["resnet20_cifar", "--data", "mnist5k", "--limit", "32", "--resize", "32", "--channels", "3"]


def test_train_bn_l1_is_in_the_checkpointed_config_and_shrinks_gamma(capsys, tmp_path) -> None:
    runs = {}
    for lam in ("0", "0.05"):
        out = tmp_path / lam
        args = [*RESNET, "--epochs", "1", "--bn-l1", lam, "--out", str(out)]
        code, _, err = run(capsys, "train", *args)
        assert code == 0, err
        state = load_checkpoint(out / "checkpoints" / "checkpoint.pt")
        assert state["config"]["bn_l1"] == float(lam)
        scales = [v.abs() for k, v in state["model"].items() if "bn" in k and k.endswith("weight")]
        runs[lam] = torch.cat(scales)
    assert runs["0.05"].sum() < runs["0"].sum()


def test_bad_bn_l1_names_the_flag(capsys, tmp_path) -> None:
    bad = [*RESNET, "--epochs", "1", "--bn-l1", "-1", "--out", str(tmp_path / "a")]
    code, _, err = run(capsys, "train", *bad)
    assert code != 0 and "bn_l1" in err and "--bn-l1" in err and "Traceback" not in err
    lenet = ["lenet5", "--data", "mnist5k", "--limit", "32", "--epochs", "1", "--bn-l1", "1e-4"]
    code, _, err = run(capsys, "train", *lenet, "--out", str(tmp_path / "b"))
    assert code != 0 and "LeNet5 has no trainable affine BatchNorm" in err


def test_recipe_train_and_finetune_take_bn_l1() -> None:
    recipe = parse_recipe(
        "baseline:\n  train: {epochs: 2, bn_l1: 1.0e-4}\nstages:\n  - finetune: {epochs: 1, bn_l1: 2.0e-5}\n"
    )
    assert recipe.baseline.train.train_config(0).bn_l1 == 1e-4
    assert recipe.stages[0].train_config(0).bn_l1 == 2e-5
    with pytest.raises(ConfigError, match=r"bn_l1: Input should be greater than or equal to 0"):
        parse_recipe("stages:\n  - finetune: {epochs: 1, bn_l1: -1.0e-4}\n")
