"""Recipes: validation with field and line, safe loading, overrides, the bundled default."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsculpt.errors import ConfigError
from netsculpt.pipeline import default_recipe_path, load_recipe, parse_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_default_recipe_is_the_example() -> None:
    assert default_recipe_path().read_text() == (EXAMPLES / "lenet5_mnist5k.yaml").read_text()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_recipes_validate(path: Path) -> None:
    recipe, _ = load_recipe(path)
    assert recipe.stages and recipe.name


def test_errors_name_field_and_line() -> None:
    text = "model:\n  name: lenet5\nstages:\n  - prune:\n      criterion: l1\n      ratio: 1.5\n"
    with pytest.raises(
        ConfigError, match=r"<recipe>:6: stages\.0\.prune\.ratio: Input should be less than 1"
    ):
        parse_recipe(text)


def test_unknown_fields_and_stages_are_refused() -> None:
    with pytest.raises(ConfigError, match=r":2: model\.nam: Extra inputs are not permitted"):
        parse_recipe("model:\n  nam: lenet5\n")
    with pytest.raises(ConfigError, match=r":3: stages\.1: unknown stage 'prun'; did you mean 'prune'"):
        parse_recipe("stages:\n  - finetune: {epochs: 1}\n  - prun: {ratio: 0.5}\n")  # its own line, not 1
    with pytest.raises(ConfigError, match="exactly one of 'ratio', 'target' or 'widths'"):
        parse_recipe("stages:\n  - prune: {ratio: 0.5, widths: {conv1: 2}}\n")


def test_yaml_with_python_objects_is_refused() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_recipe("model: !!python/object/apply:os.system ['echo hacked']\n")


def test_overrides_set_nested_fields() -> None:
    recipe = parse_recipe(
        "stages:\n  - prune: {ratio: 0.5}\n  - distill: {epochs: 5}\n",
        overrides=["data.limit=200", "stages.1.distill.epochs=2", "stages.0.prune.criterion=l2"],
    )
    assert recipe.data.limit == 200
    assert recipe.stages[1].epochs == 2 and recipe.stages[0].criterion == "l2"
    with pytest.raises(ConfigError, match="must look like"):
        parse_recipe("{}", overrides=["data.limit"])


def test_distill_stage_takes_mixup_and_refuses_a_negative_one() -> None:
    recipe = parse_recipe("stages:\n  - prune: {ratio: 0.5}\n  - distill: {epochs: 5, mixup: 1.0}\n")
    assert recipe.stages[1].mixup == 1.0 and "mixup" not in recipe.stages[1].overrides()
    with pytest.raises(ConfigError, match="mixup"):
        parse_recipe("stages:\n  - distill: {mixup: -1}\n")


def test_a_stage_after_quantize_is_refused_when_the_recipe_is_read() -> None:
    text = "stages:\n  - prune: {ratio: 0.5}\n  - quantize: {}\n  - finetune: {epochs: 1}\n"
    with pytest.raises(ConfigError, match=r"stages.1: quantize must be the last .* move finetune"):
        parse_recipe(text)
    parse_recipe("stages:\n  - prune: {ratio: 0.5}\n  - quantize: {}\n")  # last: fine


def test_a_stage_whose_warmup_fills_it_is_refused_when_the_recipe_is_read() -> None:
    """distill epochs 1 with warmup_epochs 1 was refused only when the stage started, after the baseline
    had trained; an unknown preset likewise. A preset's own warm-up still shrinks for a short stage."""
    text = "stages:\n  - prune: {ratio: 0.5}\n  - distill: {epochs: 1, warmup_epochs: 1}\n"
    with pytest.raises(ConfigError, match=r"stages\.1\.distill: warmup_epochs=1 leaves no epoch"):
        parse_recipe(text)
    with pytest.raises(ConfigError, match=r"baseline\.train: .*'lenet5_mnist'"):
        parse_recipe("baseline: {train: {preset: lenet5_mnist}}\n")
    short = parse_recipe("baseline: {train: {preset: lenet5_mnist5k, epochs: 1}}\n")
    assert short.baseline.train.train_config(0).warmup_epochs == 0


def test_iterative_prune_settings_are_refused_when_the_recipe_is_read() -> None:
    """Both were refused only when the prune stage started, after the baseline had trained."""
    refit = "stages:\n  - prune: {target: {macs: 0.5}, iterative_steps: 2, refit: true}\n"
    with pytest.raises(ConfigError, match=r"stages\.0\.prune: .*refit works with one-shot pruning"):
        parse_recipe(refit)
    with pytest.raises(ConfigError, match=r"stages\.0\.prune: .*iterative_steps > 1 needs a 'target'"):
        parse_recipe("stages:\n  - prune: {ratio: 0.5, iterative_steps: 2}\n")
    parse_recipe("stages:\n  - prune: {target: {macs: 0.5}, iterative_steps: 2}\n")  # fine


def test_a_model_that_cannot_take_the_data_is_refused_before_training(tmp_path) -> None:
    """LeNet-5's fc1 is built for 28 px: 16 px digits ended in a matmul traceback from inside the training
    loop (a timm ViT at 224 px given 32 px digits, in an assertion of its patch embedding)."""
    from netsculpt.pipeline import run_recipe

    text = "model: {name: lenet5}\ndata: {name: digits, resize: 16, limit: 20}\n"
    text += "baseline: {train: {epochs: 1}}\n"
    match = r"model 'lenet5' cannot take the data's images of shape \(1, 16, 16\) .*data\.resize"
    with pytest.raises(ConfigError, match=match):
        run_recipe(parse_recipe(text), text, tmp_path)
    assert not (tmp_path / "00_baseline" / "checkpoints").exists()
