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
from netsculpt.sparsity import (
    SparsityConfig,
    iter_masks,
    plan_phases,
    sparsify,
    sparsity_of,
    target_layers,
)
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
    assert not any("parametrizations" in k or "mask" in k or "_orig" in k for k in model.state_dict())
    assert not model.conv2._forward_pre_hooks and type(model.conv2) is nn.Conv2d
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
    density = {n: float(mask.mean()) for n, mask in iter_masks(model)}
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


def test_a_run_killed_before_a_phases_first_checkpoint_resumes_bit_for_bit(tmp_path, monkeypatch) -> None:
    """Phases 0 and 1 finished, phase 2 killed in its first batch: the finished phases are skipped, and
    the loaders' shuffle generators must be where they left them."""
    config = SparsityConfig(sparsity=0.8, method="gap", partitions=2, phase_epochs=2)
    reference = _net()
    sparsify(reference, config, *_loaders(), TrainConfig(epochs=6), out_dir=tmp_path / "a")
    calls = {"n": 0}

    def crash(name: str) -> None:
        if name == "train:batch":
            calls["n"] += 1
            if calls["n"] == 17:  # 4 batches an epoch, 2 epochs a phase: phase 2's first batch
                raise KeyboardInterrupt

    monkeypatch.setattr(faults, "point", crash)
    with pytest.raises(KeyboardInterrupt):
        sparsify(_net(), config, *_loaders(), TrainConfig(epochs=6), out_dir=tmp_path / "b")
    monkeypatch.undo()
    assert not (tmp_path / "b" / "phase-02" / "checkpoint.pt").exists()
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


class _Attention(nn.Module):
    """MultiheadAttention reads ``out_proj.weight`` without calling ``out_proj``: a mask must still hold."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x[:, 0])  # 8 rows of 8 pixels: 8 tokens of 16 features
        mixed, _ = self.attn(tokens, tokens, tokens)
        return self.head(mixed.mean(1))


def test_attention_layers_train_masked_and_keep_their_zeros() -> None:
    model = _Attention()
    train, test = _loaders()
    config = SparsityConfig(sparsity=0.8, scope="layer")
    sparsify(model, config, train, test, TrainConfig(epochs=2, lr=0.05), keep_masks=True)
    probe = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        masked = model(probe)
    assert float((model.attn.out_proj.weight == 0).float().mean()) == pytest.approx(0.8, abs=0.01)
    from netsculpt.sparsity import remove_masks_

    remove_masks_(model)
    with torch.no_grad():
        assert torch.equal(model(probe), masked)
    assert type(model.attn.out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear
    assert list(model.attn.out_proj.state_dict()) == ["weight", "bias"]


def test_gap_global_reaches_the_target_when_a_partition_is_never_regrown() -> None:
    """Two grow phases over three partitions: the third keeps its first mask to the end."""
    model = _net()
    train, test = _loaders()
    config = SparsityConfig(sparsity=0.9, method="gap", partitions=3, scope="global")
    sparsify(model, config, train, test, TrainConfig(epochs=3, lr=0.05))
    zeros = sum(float((model.get_submodule(n).weight == 0).sum()) for n in ("conv1", "conv2", "fc"))
    total = sum(model.get_submodule(n).weight.numel() for n in ("conv1", "conv2", "fc"))
    assert zeros / total == pytest.approx(0.9, abs=0.005)


def test_a_checkpoint_with_the_old_prune_utility_keys_still_loads() -> None:
    """Runs checkpointed before masks became parametrizations named them weight_orig / weight_mask."""
    from netsculpt.train.checkpoint import load_model_state

    model = _net()
    sparsify(model, SparsityConfig(sparsity=0.5), *_loaders(), TrainConfig(epochs=1), keep_masks=True)
    old = {}
    for key, value in model.state_dict().items():
        key = key.replace(".parametrizations.weight.original", ".weight_orig")
        old[key.replace(".parametrizations.weight.0.mask", ".weight_mask")] = value.clone()
    assert any(k.endswith(".weight_orig") for k in old)
    fresh = _net()
    sparsify(fresh, SparsityConfig(sparsity=0.5), *_loaders(), TrainConfig(epochs=1, seed=5), keep_masks=True)
    load_model_state(fresh, old, "an old checkpoint")
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_pruned_weights_are_positive_zeros_so_the_sparse_file_is_bit_exact(tmp_path) -> None:
    """A pruned negative weight masked by a product is -0.0; the sparse format stores zeros implicitly
    and reloads +0.0, so the bits would change."""
    import netsculpt as ns

    model = _net()
    sparsify(model, SparsityConfig(sparsity=0.7), *_loaders(), TrainConfig(epochs=1))
    zeros = torch.cat([p.detach().flatten() for p in model.parameters()])
    zeros = zeros[zeros == 0]
    assert zeros.numel() and not torch.signbit(zeros).any()
    ns.save(model, tmp_path / "m")
    back = ns.load(tmp_path / "m", model=_net())
    for key, value in model.state_dict().items():
        bits = back.state_dict()[key].reshape(-1).view(torch.uint8)
        assert torch.equal(value.reshape(-1).view(torch.uint8), bits), key


def test_restarting_phases_warm_up_once_and_one_epoch_phases_run(tmp_path) -> None:
    """A preset that warms up for an epoch (lenet5_mnist5k) with one-epoch GaP phases: each phase used to
    inherit the warm-up, which filled it, so every total number of epochs was refused. Now only the first
    phase warms up, and only as far as it leaves an epoch of its own schedule."""
    from netsculpt.train.checkpoint import load_checkpoint

    config = SparsityConfig(sparsity=0.8, method="gap", partitions=2, phase_epochs=1)
    recipe = TrainConfig(epochs=4, lr=0.05, warmup_epochs=1)
    result = sparsify(_net(), config, *_loaders(), recipe, out_dir=tmp_path / "a")
    assert [p["epochs"] for p in result.phases] == [1, 1, 1, 1]
    warmups = [
        load_checkpoint(f / "checkpoint.pt")["config"]["warmup_epochs"]
        for f in sorted((tmp_path / "a").glob("phase-*"))
    ]
    assert warmups == [0, 0, 0, 0]  # a one-epoch first phase has no epoch to spare for warming up
    longer = SparsityConfig(sparsity=0.8, method="gap", partitions=2, phase_epochs=2)
    sparsify(_net(), longer, *_loaders(), TrainConfig(epochs=6, warmup_epochs=1), out_dir=tmp_path / "b")
    warmups = [
        load_checkpoint(f / "checkpoint.pt")["config"]["warmup_epochs"]
        for f in sorted((tmp_path / "b").glob("phase-*"))
    ]
    assert warmups == [1, 0, 0]  # the first phase warms up; the later ones restart from trained weights
    once = dataclasses.replace(config, restart_lr=False)  # one schedule: its warm-up is the first epoch
    result = sparsify(_net(), once, *_loaders(), recipe, out_dir=tmp_path / "c")
    assert [p["epochs"] for p in result.phases] == [1, 1, 1, 1]
