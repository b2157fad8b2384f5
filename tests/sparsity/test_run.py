"""Sparse training: every method reaches its target, resumes bit for bit, and leaves a plain model."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from netsculpt import faults
from netsculpt.errors import ConfigError
from netsculpt.sparsity import SparsityConfig, plan_phases, sparsify, sparsity_of, target_layers
from netsculpt.train import TrainConfig
from tests.weights._models import TinyNet


def _loaders() -> tuple[DataLoader, DataLoader]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8, generator=gen)
    y = (x.mean(dim=(1, 2, 3)) > 0).long() + 2 * (x[:, 0, 0, 0] > 0).long()
    train = DataLoader(
        TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(1)
    )
    return train, DataLoader(TensorDataset(x[:32], y[:32]), batch_size=32)


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = TinyNet()
    net.conv1 = nn.Conv2d(1, 8, 3, padding=1)  # 9 inputs per output: skipped by N:M below
    return net


def _only_big(module: nn.Module, name: str) -> bool:
    return name != "conv1"


@pytest.mark.parametrize(
    "config",
    [
        SparsityConfig(sparsity=0.8, schedule="oneshot"),
        SparsityConfig(sparsity=0.8, schedule="gradual", ramp_phases=3),
        SparsityConfig(sparsity=0.75, scope="global"),
        SparsityConfig(pattern="2:4", filter_fn=_only_big),
        SparsityConfig(sparsity=0.5, pattern="block", block=(4, 4), filter_fn=_only_big),
        SparsityConfig(sparsity=0.8, method="gap", partitions=2, phase_epochs=1),
        SparsityConfig(sparsity=0.8, scope="erk"),
        SparsityConfig(sparsity=0.8, method="gap", partitions=2, phase_epochs=1, scope="erk"),
        SparsityConfig(sparsity=0.8, scope="layer"),
    ],
    ids=["oneshot", "gradual", "global", "2:4", "block", "gap", "erk", "gap-erk", "layer"],
)
def test_each_method_reaches_its_target_and_leaves_a_plain_model(config: SparsityConfig) -> None:
    model = _net()
    train, test = _loaders()
    result = sparsify(model, config, train, test, TrainConfig(epochs=3, lr=0.05))
    names = [n for n in ("conv1", "conv2", "fc") if config.filter_fn is None or n != "conv1"]
    zeros = sum(float((model.get_submodule(n).weight == 0).sum()) for n in names)
    total = sum(model.get_submodule(n).weight.numel() for n in names)
    assert zeros / total == pytest.approx(config.target(), abs=0.02)
    assert not any("weight_orig" in k or "weight_mask" in k for k in model.state_dict())
    assert not model.conv2._forward_pre_hooks
    assert set(result.layer_sparsity) == {"conv1", "conv2", "fc"}
    assert result.test_acc is not None


def test_default_scope_is_global_for_unstructured_and_per_layer_for_groups() -> None:
    assert SparsityConfig().effective_scope == "global"
    assert SparsityConfig(pattern="2:4").effective_scope == "layer"
    assert SparsityConfig(pattern="block").effective_scope == "layer"
    assert SparsityConfig(scope="layer").effective_scope == "layer"
    with pytest.raises(ConfigError, match="unstructured pattern only"):
        SparsityConfig(pattern="2:4", scope="global")


def test_gap_phases_cycle_partitions_and_spend_every_epoch() -> None:
    config = SparsityConfig(method="gap", partitions=3, phase_epochs=2)
    phases = plan_phases(_net(), config, 10)
    assert [label for label, _, _ in phases] == ["grow 0", "grow 1", "grow 2", "grow 0", "final sparse"]
    assert sum(e for _, _, e in phases) == 10
    with pytest.raises(ConfigError, match="GaP needs"):
        plan_phases(_net(), config, 3)


def test_gap_final_epochs_lengthens_the_last_sparse_phase() -> None:
    config = SparsityConfig(method="gap", partitions=3, phase_epochs=2, final_epochs=5)
    phases = plan_phases(_net(), config, 12)
    assert [(label, e) for label, _, e in phases] == [
        ("grow 0", 2),
        ("grow 1", 2),
        ("grow 2", 2),
        ("final sparse", 6),
    ]
    with pytest.raises(ConfigError, match="final_epochs"):
        SparsityConfig(method="gap", final_epochs=-1)


def _phase_lrs(tmp_path, config: SparsityConfig) -> list[list[float]]:
    """Every phase's per-batch learning rates, replayed from the configs its checkpoints saved."""
    from netsculpt.train import lr_factor
    from netsculpt.train.checkpoint import load_checkpoint

    sparsify(_net(), config, *_loaders(), TrainConfig(epochs=6, lr=0.05), out_dir=tmp_path)
    lrs = []
    for folder in sorted(tmp_path.glob("phase-*")):
        ckpt = load_checkpoint(folder / "checkpoint.pt")
        phase = TrainConfig.from_dict(ckpt["config"])
        lrs.append([phase.lr * lr_factor(phase, s, 4) for s in range(phase.epochs * 4)])
    return lrs


def test_gap_without_restarts_runs_one_lr_schedule_over_its_phases(tmp_path) -> None:
    from netsculpt.train import lr_factor

    base = {"sparsity": 0.8, "method": "gap", "partitions": 2, "phase_epochs": 2}
    restarting = _phase_lrs(tmp_path / "a", SparsityConfig(**base))
    once = _phase_lrs(tmp_path / "b", SparsityConfig(**base, restart_lr=False))
    assert [len(p) for p in once] == [len(p) for p in restarting] == [8, 8, 8]  # 4 batches an epoch
    assert all(p[0] == 0.05 for p in restarting)  # each phase starts over at the full lr
    dense = TrainConfig(epochs=6, lr=0.05)
    assert [lr for p in once for lr in p] == [0.05 * lr_factor(dense, s, 4) for s in range(24)]
    with pytest.raises(ConfigError, match="restart_lr"):
        SparsityConfig(method="gap", restart_lr="no")  # type: ignore[arg-type]


def test_gap_without_restarts_resumes_bit_for_bit(tmp_path, monkeypatch) -> None:
    train, test = _loaders()
    config = SparsityConfig(sparsity=0.8, method="gap", partitions=2, phase_epochs=2, restart_lr=False)
    reference = _net()
    sparsify(reference, config, train, test, TrainConfig(epochs=6), out_dir=tmp_path / "a")
    restarting = _net()
    sparsify(restarting, dataclasses.replace(config, restart_lr=True), *_loaders(), TrainConfig(epochs=6))
    assert not torch.equal(reference.fc.weight, restarting.fc.weight)  # the option changes training

    calls = {"n": 0}

    def crash(name: str) -> None:
        if name == "train:epoch":
            calls["n"] += 1
            if calls["n"] == 4:  # mid phase 2 (2 epochs each): its lr slice starts at epoch 4 of 6
                raise KeyboardInterrupt

    monkeypatch.setattr(faults, "point", crash)
    with pytest.raises(KeyboardInterrupt):
        sparsify(_net(), config, *_loaders(), TrainConfig(epochs=6), out_dir=tmp_path / "b")
    monkeypatch.undo()
    resumed = _net()
    sparsify(resumed, config, *_loaders(), TrainConfig(epochs=6), out_dir=tmp_path / "b", resume=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_gap_grows_one_partition_dense_at_a_time() -> None:
    model = _net()
    config = SparsityConfig(sparsity=0.9, method="gap", partitions=3)
    phases = plan_phases(model, config, 4)
    phases[1][1](model)  # after the first grow, phase two: conv1 pruned back, conv2 dense
    density = {n: float(m.weight_mask.mean()) for n, m in model.named_modules() if hasattr(m, "weight_mask")}
    assert density["conv2"] == 1.0 and density["conv1"] == pytest.approx(0.1, abs=0.02)


def test_pattern_that_does_not_fit_fails_before_training() -> None:
    train, test = _loaders()
    with pytest.raises(ConfigError, match="'conv1'"):
        sparsify(_net(), SparsityConfig(pattern="2:4"), train, test, TrainConfig(epochs=1))


def test_interrupted_run_resumes_bit_for_bit(tmp_path, monkeypatch) -> None:
    train, test = _loaders()
    config = SparsityConfig(sparsity=0.8, method="gap", partitions=2, phase_epochs=2)
    reference = _net()
    sparsify(reference, config, train, test, TrainConfig(epochs=6), out_dir=tmp_path / "a")

    calls = {"n": 0}

    def crash(name: str) -> None:
        if name == "train:epoch":
            calls["n"] += 1
            if calls["n"] == 3:  # mid phase 1 (2 epochs each): its checkpoint holds the grown masks
                raise KeyboardInterrupt

    model = _net()
    monkeypatch.setattr(faults, "point", crash)
    with pytest.raises(KeyboardInterrupt):
        sparsify(model, config, *_loaders(), TrainConfig(epochs=6), out_dir=tmp_path / "b")
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="resume=True"):
        sparsify(_net(), config, *_loaders(), TrainConfig(epochs=6), out_dir=tmp_path / "b")
    resumed = _net()
    sparsify(resumed, config, *_loaders(), TrainConfig(epochs=6), out_dir=tmp_path / "b", resume=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_composes_with_channel_pruning_and_keeps_the_masked_function() -> None:
    import netsculpt as ns

    model = ns.prune(_net(), torch.randn(1, 1, 8, 8), ratio=0.5)  # channels first, then weights
    train, test = _loaders()
    config = SparsityConfig(sparsity=0.5)
    masked = copy.deepcopy(model)
    sparsify(masked, config, train, test, TrainConfig(epochs=1), keep_masks=True)
    baked = copy.deepcopy(masked)
    from netsculpt.sparsity import remove_masks_

    remove_masks_(baked)
    x = torch.randn(4, 1, 8, 8)
    masked.eval(), baked.eval()
    assert torch.allclose(masked(x), baked(x), atol=1e-6)
    fractions, sizes = sparsity_of(baked), {n: m.weight.numel() for n, m in target_layers(baked).items()}
    overall = sum(fractions[n] * sizes[n] for n in sizes) / sum(sizes.values())
    assert overall == pytest.approx(0.5, abs=0.01)  # the default global threshold: exact overall
