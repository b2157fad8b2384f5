"""The recipe's ``prune`` stage with ``iterative_steps`` runs ns.prune_iteratively, lands on its target and
writes the rounds' composed plan as ``plan.json``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

import netsculpt as ns
from netsculpt.measure import count_macs
from netsculpt.pipeline.recipe_stages import PruneStage
from netsculpt.pipeline.stages import STAGES
from netsculpt.surgery import PrunePlan

TOL = 0.02  # what one-shot target_plan holds a target to


def test_iterative_steps_land_on_the_recipes_target(tmp_path) -> None:
    torch.manual_seed(1)  # the LeNet-5 init whose third round landed at 0.32 of macs=0.4 before
    model, x = ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28)
    deploy = SimpleNamespace(runtime="torch", threads=1)
    ctx = SimpleNamespace(example=x, train_loader=None, task=None, recipe=SimpleNamespace(deploy=deploy))
    cfg = PruneStage(target={"macs": 0.4}, iterative_steps=3)
    small, info = STAGES["prune"](ctx, cfg, model, tmp_path)
    assert info["iterative_steps"] == 3 and info["plan"] == json.loads((tmp_path / "plan.json").read_text())
    assert 0.4 * (1 - TOL) <= count_macs(small, x)[0] / count_macs(model, x)[0] <= 0.4


def test_iterative_steps_with_ratios_end_at_the_one_shot_widths(tmp_path) -> None:
    model, x = ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28)
    deploy = SimpleNamespace(runtime="torch", threads=1)
    ctx = SimpleNamespace(example=x, train_loader=None, task=None, recipe=SimpleNamespace(deploy=deploy))
    cfg = PruneStage(ratios={"conv*": 0.5, "Linear": 0.2}, iterative_steps=2, round_to=1)
    small, info = STAGES["prune"](ctx, cfg, model, tmp_path)
    assert info["iterative_steps"] == 2
    # the rounds' plans compose into plan.json, one plan of the original that rebuilds the result exactly
    replayed = ns.apply_plan(model, PrunePlan.load(tmp_path / "plan.json"), x).eval()
    probe = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(replayed(probe), small.eval()(probe))
    # 20, 50 and 500 channels less floor(ratio x size): the one-shot stage's widths (test_prune_ratios_stage)
    assert (small.conv1.out_channels, small.conv2.out_channels, small.fc1.out_features) == (10, 25, 400)
