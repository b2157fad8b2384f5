"""The recipe's ``ratios`` (prune stage) and ``ignored`` (prune and search stages): layer keys as
``ns.prune`` takes them, torch.nn classes by name, checked when the recipe is read."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

import netsculpt as ns
from netsculpt.data.prepare import ImageDataset
from netsculpt.errors import ConfigError
from netsculpt.pipeline import parse_recipe
from netsculpt.pipeline.recipe_stages import PruneStage, SearchStage
from netsculpt.pipeline.stages import STAGES
from tests.search import _tiny


def _ctx(x: torch.Tensor, train_loader=None) -> SimpleNamespace:
    deploy = SimpleNamespace(runtime="torch", threads=1)
    recipe = SimpleNamespace(deploy=deploy, seed=0)
    return SimpleNamespace(example=x, train_loader=train_loader, task=None, recipe=recipe)


def test_ratios_prune_each_layer_its_own_fraction(tmp_path) -> None:
    recipe = parse_recipe(
        "stages:\n  - prune:\n      ratios: {conv*: 0.5, torch.nn.Linear: 0.2}\n      round_to: 1\n"
    )
    cfg = recipe.stages[0]
    model, x = ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28)
    small, info = STAGES["prune"](_ctx(x), cfg, model, tmp_path)
    assert {g: len(k) for g, k in info["plan"]["keep"].items()} == {"conv1": 10, "conv2": 25, "fc1": 400}
    assert info["plan"]["meta"]["ratios"] == {"conv*": 0.5, "Linear": 0.2}
    assert small(x).shape == (1, 10)
    cfg = PruneStage(ratio=0.5, ignored=["Conv2d"], round_to=1)  # a class by name in ignored, too
    _, info = STAGES["prune"](_ctx(x), cfg, model, tmp_path)
    assert {g: len(k) for g, k in info["plan"]["keep"].items()} == {"fc1": 250}


@pytest.mark.parametrize(
    ("yaml", "match"),
    [
        ("ratios:\n        nn.Linaer: 0.5", r"<recipe>:4: stages\.0\.prune\.ratios.*did you mean Linear\?"),
        ("ratios:\n        fc1: 1.5", r":4: stages\.0\.prune\.ratios\.fc1: Input should be less than 1"),
        ("ratios: {fc1: 0.5}\n      target: {macs: 0.5}", r":2: stages\.0\.prune: .*not with 'target'"),
        ("ratios: {fc1: 0.5}\n      widths: {fc1: 4}", r"stages\.0\.prune: .*not with 'widths'"),
        ("ratios: {fc1: 0.5}\n      round_to: auto", r"stages\.0\.prune: .*round_to: auto is not supported"),
        ("ratio: 0.5\n      ignored: [nn.Lnear]", r"<recipe>:4: stages\.0\.prune\.ignored\.0: .*Linear\?"),
    ],
)
def test_bad_ratios_are_refused_when_the_recipe_is_read(yaml: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_recipe(f"stages:\n  - prune:\n      {yaml}\n")


def test_search_stage_keeps_ignored_layers_whole(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"<recipe>:4: stages\.0\.search\.ignored\.0: .*Linear\?"):
        parse_recipe("stages:\n  - search:\n      target: {macs: 0.5}\n      ignored: [torch.nn.Lnear]\n")
    torch.set_num_threads(1)
    images, labels = _tiny.images(256, 1).tensors
    train = DataLoader(ImageDataset(images, labels, info=None), batch_size=32)  # what split_holdout reads
    options = {"step": 0.25, "adapt_bn_batches": 0}
    cfg = SearchStage(target={"macs": 0.8}, ignored=["conv3*"], val_size=64, options=options)
    model = _tiny.trained_model()
    _, info = STAGES["search"](_ctx(_tiny.example(), train), cfg, model, tmp_path)
    # conv3 keeps its input channels too (conv2's group): unignored, the search cut conv1 and conv3
    assert set(info["plan"]["keep"]) == {"conv1"}
