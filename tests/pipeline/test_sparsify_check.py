"""A sparsify stage's N:M pattern is checked against the model's layers when their shapes are known (before
the baseline trains; right after a pruning stage), not only when the stage starts, after every earlier one."""

from __future__ import annotations

import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.pipeline import parse_recipe, run_recipe

# Caffe LeNet-5 on 28 px digits: conv1 (20, 1, 5, 5) has 25 inputs per output, no multiple of 4 (a stem
# conv, as an RGB model's 3x3x3 = 27); conv2 has 20 x 25 = 500, fc1 800, fc2 500: all multiples of 4
RECIPE = """
name: nm
model: {name: lenet5}
data: {name: mnist5k, limit: 200}
baseline: {train: {preset: default, epochs: 1}}
stages:
%s
outputs: {latency_runs: 1, report: false}
"""


def test_a_stem_conv_the_pattern_does_not_divide_is_refused_before_the_baseline_trains(tmp_path) -> None:
    text = RECIPE % "  - finetune: {epochs: 1}\n  - sparsify: {pattern: '2:4', epochs: 1}"
    match = r"stages\.1\.sparsify: cannot apply 2:4 sparsity to 'conv1'.*skip: \[conv1\]"
    with pytest.raises(ConfigError, match=match + ".*checked on lenet5 as built, before the baseline trains"):
        run_recipe(parse_recipe(text), text, tmp_path)
    assert not (tmp_path / "00_baseline").exists()  # it failed after the baseline and the fine-tuning


def test_a_width_pruning_leaves_undivisible_is_refused_right_after_the_pruning(tmp_path) -> None:
    # conv1 pruned to 5 channels: conv2 then takes 5 x 25 = 125 inputs per output, no multiple of 4
    stages = (
        "  - prune: {criterion: l1, widths: {conv1: 5}, round_to: 1}\n  - finetune: {epochs: 1}\n"
        "  - sparsify: {pattern: '2:4', epochs: 1, skip: [conv1]}"
    )
    text = RECIPE % stages
    with pytest.raises(ConfigError, match=r"stages\.2\.sparsify: cannot apply 2:4 .* 'conv2': its weight "
                       r"\[50, 5, 5, 5\].*checked on the model 01_prune gave"):  # fmt: skip
        run_recipe(parse_recipe(text), text, tmp_path)
    assert (tmp_path / "01_prune" / "DONE").is_file() and not (tmp_path / "02_finetune").exists()


class Stem(torch.nn.Module):
    def __init__(self, stem_in: int = 3) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(stem_in, 8, 3)  # 3 x 3 x 3 = 27 inputs: no 2:4 group fits
        self.head = torch.nn.Conv2d(8, 4, 1)


def test_a_stage_behind_a_shape_changing_stage_waits_for_it_and_skip_is_honoured() -> None:
    from netsculpt.pipeline.sparsify_check import check_sparsify_stages

    behind_prune = parse_recipe("stages:\n  - prune: {ratio: 0.5}\n  - sparsify: {pattern: '2:4'}\n")
    check_sparsify_stages(behind_prune, Stem(), 0, "the baseline")  # the prune may change the shapes
    with pytest.raises(ConfigError, match=r"stages\.1\.sparsify: .*'stem'.*checked on the pruned model"):
        check_sparsify_stages(behind_prune, Stem(), 1, "the pruned model")
    skipped = parse_recipe("stages:\n  - finetune: {}\n  - sparsify: {pattern: '2:4', skip: [stem]}\n")
    check_sparsify_stages(skipped, Stem(), 0, "the baseline")  # the stem left dense, the head fits
    unstructured = parse_recipe("stages:\n  - sparsify: {}\n")
    check_sparsify_stages(unstructured, Stem(), 0, "the baseline")
    with pytest.raises(ConfigError, match=r"stages\.0\.sparsify\.skip 'stme': the model has no such layer"):
        check_sparsify_stages(parse_recipe("stages:\n  - sparsify: {pattern: '2:4', skip: [stme]}\n"),
                              Stem(), 0, "the baseline")  # fmt: skip
