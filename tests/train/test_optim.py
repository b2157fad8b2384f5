"""Learning-rate schedules and parameter groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from netsculpt.train import TrainConfig, lr_factor
from netsculpt.train.optim import build_optimizer, build_scheduler, parameter_groups

SPE = 10  # steps per epoch


def test_cosine_starts_at_one_and_reaches_zero_at_the_end() -> None:
    config = TrainConfig(epochs=5, schedule="cosine")
    total = 5 * SPE
    assert lr_factor(config, 0, SPE) == 1.0
    # cos(pi * 0.5) = 0, so half way the factor is exactly one half
    assert lr_factor(config, total // 2, SPE) == pytest.approx(0.5)
    # the last batch uses 0.5 * (1 + cos(pi * 49/50)) ~ 0.001; the step after the run is exactly 0
    assert lr_factor(config, total - 1, SPE) == pytest.approx(0.5 * (1 + math.cos(math.pi * 49 / 50)))
    assert lr_factor(config, total - 1, SPE) < 1e-2
    assert lr_factor(config, total, SPE) == pytest.approx(0.0, abs=1e-12)
    values = [lr_factor(config, s, SPE) for s in range(total)]
    assert values == sorted(values, reverse=True)


def test_warmup_rises_linearly_then_cosine_starts_from_one() -> None:
    config = TrainConfig(epochs=4, warmup_epochs=1, schedule="cosine")
    assert [lr_factor(config, s, SPE) for s in range(SPE)] == pytest.approx(
        [(s + 1) / SPE for s in range(SPE)]
    )
    assert lr_factor(config, SPE, SPE) == 1.0
    assert lr_factor(config, 4 * SPE, SPE) == pytest.approx(0.0, abs=1e-12)


def test_step_and_constant_schedules() -> None:
    step = TrainConfig(epochs=4, schedule="step")
    # milestones at 1/2 and 3/4 of 40 steps: x0.1 from step 20, x0.01 from step 30
    assert [lr_factor(step, s, SPE) for s in (0, 19, 20, 29, 30, 39)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )
    constant = TrainConfig(epochs=4, schedule="constant", warmup_epochs=2)
    assert lr_factor(constant, 2 * SPE - 1, SPE) == 1.0
    assert lr_factor(constant, 4 * SPE - 1, SPE) == 1.0


@pytest.mark.parametrize("warmup", [0, 1])
def test_slices_of_a_schedule_replay_the_whole_schedule(warmup: int) -> None:
    whole = TrainConfig(epochs=10, warmup_epochs=warmup)
    pieces = [
        TrainConfig(epochs=e, warmup_epochs=warmup, schedule_offset=o, schedule_epochs=10)
        for o, e in ((0, 2), (2, 2), (4, 6))
    ]
    stitched = [lr_factor(p, s, SPE) for p in pieces for s in range(p.epochs * SPE)]
    assert stitched == [lr_factor(whole, s, SPE) for s in range(10 * SPE)]
    assert stitched[2 * SPE] < 1.0  # the second slice does not restart at the top


def test_schedule_slice_is_checked() -> None:
    from netsculpt.errors import ConfigError

    with pytest.raises(ConfigError, match="runs past"):
        TrainConfig(epochs=3, schedule_offset=8, schedule_epochs=10)
    with pytest.raises(ConfigError, match="needs schedule_epochs"):
        TrainConfig(epochs=3, schedule_offset=2)
    with pytest.raises(ConfigError, match="warmup_epochs"):
        TrainConfig(epochs=1, warmup_epochs=2, schedule_epochs=2)
    config = TrainConfig(epochs=2, warmup_epochs=1, schedule_offset=3, schedule_epochs=5)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_scheduler_applies_the_factor_per_batch() -> None:
    config = TrainConfig(epochs=2, lr=0.2, warmup_epochs=1)
    model = nn.Linear(2, 2)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, SPE)
    seen = []
    for _ in range(2 * SPE):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.2 * lr_factor(config, s, SPE) for s in range(2 * SPE)])


def test_weight_decay_skips_biases_and_norm_scales() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    groups = parameter_groups(model, 5e-4)
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 5e-4 and groups[1]["weight_decay"] == 0.0
    assert decayed == {id(model[0].weight)}  # the only tensor with more than one dimension


def test_adamw_is_built_when_asked() -> None:
    optimizer = build_optimizer(nn.Linear(2, 2), TrainConfig(optimizer="adamw", lr=1e-3))
    assert isinstance(optimizer, torch.optim.AdamW)
