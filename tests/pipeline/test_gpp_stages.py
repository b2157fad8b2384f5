"""A Grow-Push-Prune recipe: grow, push, prune with gpp and refit, fine-tune; saved and resumed."""

from __future__ import annotations

import pytest

import netsculpt as ns
from netsculpt.errors import ConfigError
from netsculpt.pipeline import parse_recipe, run_recipe

RECIPE = """
name: tiny_gpp
model: {name: lenet5}
data: {name: mnist5k, limit: 200}
baseline: {train: {preset: default, epochs: 1}}
stages:
  - grow: {layers: {conv2: 6}}
  - push: {epochs: 1, push_weight: 0.3}
  - prune: {criterion: gpp, widths: {conv1: 4, conv2: 5}, refit: true, calib_batches: 2}
  - finetune: {preset: finetune, epochs: 1}
outputs: {latency_runs: 2, report: false}
"""


def test_grow_push_prune_recipe_runs_and_resumes(tmp_path) -> None:
    results = run_recipe(parse_recipe(RECIPE), RECIPE, tmp_path)
    grow, push, prune = (results["stages"][i]["info"] for i in (1, 2, 3))
    assert grow["layers"] == {"conv2": 6}
    assert push["push"]["layers"] == ["relu1", "relu2", "relu3"] and push["running"]["ratio"] < 0
    assert set(prune["refit_residual"]) == {"conv2", "fc1"}
    grown = ns.load(tmp_path / "01_grow" / "model")  # the grow edit replays on load
    assert grown.conv2.out_channels == 56
    final = ns.load(tmp_path / "04_finetune" / "model")
    assert (final.conv1.out_channels, final.conv2.out_channels) == (4, 5)
    again = run_recipe(parse_recipe(RECIPE), RECIPE, tmp_path)  # every stage done: nothing reruns
    assert again["stages"][-1]["metrics"] == results["stages"][-1]["metrics"]


def test_bad_gpp_stages_are_refused_when_the_recipe_is_read() -> None:
    with pytest.raises(ConfigError, match="layers"):
        parse_recipe(RECIPE.replace("{layers: {conv2: 6}}", "{layers: {}}"))
    with pytest.raises(ConfigError, match="momentum"):
        parse_recipe(RECIPE.replace("push_weight: 0.3", "momentum: 1.5"))


def test_the_grow_stage_grows_branches(tmp_path) -> None:
    recipe = RECIPE.replace("{layers: {conv2: 6}}", "{branches: {conv2: '3x3:4'}}")
    recipe = recipe.replace(
        "widths: {conv1: 4, conv2: 5}", "widths: {conv1: 4, conv2.main: 5, conv2.branches.0: 2}"
    )
    recipe = recipe.replace("  - push: {epochs: 1, push_weight: 0.3}\n", "")
    results = run_recipe(parse_recipe(recipe), recipe, tmp_path)
    assert results["stages"][1]["info"]["branches"] == {"conv2": "3x3:4"}
    grown = ns.load(tmp_path / "01_grow" / "model")  # the grow_branch edit replays on load
    assert grown.conv2.branches[0].kernel_size == (3, 3)
    final = ns.load(tmp_path / "03_finetune" / "model")
    assert (final.conv2.main.out_channels, final.conv2.branches[0].out_channels) == (5, 2)
    with pytest.raises(ConfigError, match="KxK:CHANNELS"):
        parse_recipe(RECIPE.replace("{layers: {conv2: 6}}", "{branches: {conv2: '3x3'}}"))


def test_the_push_stage_aims_at_the_kept_set_and_gpp_reg_prunes(tmp_path) -> None:
    recipe = RECIPE.replace(
        "{epochs: 1, push_weight: 0.3}",
        "{epochs: 1, push_weight: 0.1, keep: {relu1: 4, relu2: 5}, rest_weight: 1, shrink: 1.0}",
    ).replace("criterion: gpp,", "criterion: gpp_reg,")
    results = run_recipe(parse_recipe(recipe), recipe, tmp_path)
    push = results["stages"][2]["info"]
    assert push["push"]["keep"] == {"relu1": 4, "relu2": 5} and push["push"]["rest_weight"] == 1.0
    assert push["push"]["shrink"] == 1.0  # the kept set chosen as gpp_reg ranks channels
    assert 0 < push["running"]["rest_share"] < 2
    final = ns.load(tmp_path / "04_finetune" / "model")
    assert (final.conv1.out_channels, final.conv2.out_channels) == (4, 5)
    bad = recipe.replace("relu1: 4", "relu9: 4")
    with pytest.raises(ConfigError, match="keep"):  # a kept layer that is not a push layer
        run_recipe(parse_recipe(bad), bad, tmp_path / "bad")
