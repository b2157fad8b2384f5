"""Sparse training as a list of phases, each one ordinary :func:`netsculpt.train.train` call.

A phase changes the masks (prune, ramp one step, grow a GaP partition dense, prune it back) and then
trains. With ``out_dir`` every phase trains in ``out_dir/phase-NN`` (its checkpoint holds the masks, which
are buffers), so ``resume=True`` skips finished phases by loading their weights and continues the one
that was interrupted from its checkpoint: the result is bit for bit the uninterrupted run's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from netsculpt.checks import materialised
from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.fileio import write_json
from netsculpt.jsoncheck import read_json_file
from netsculpt.sparsity.apply import check_model, grow_dense_, mask_layers_, partitions
from netsculpt.sparsity.config import SparsityConfig
from netsculpt.sparsity.masks import remove_masks_, sparsity_of, target_layers
from netsculpt.sparsity.schedule import cubic_sparsity
from netsculpt.train import TrainConfig, train

Phase = tuple[str, Callable[[nn.Module], None], int]  # (label, mask update, epochs)


@dataclass
class SparsifyResult:
    """Per-phase history and the final per-layer sparsity."""

    phases: list[dict[str, Any]] = field(default_factory=list)
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    overall: float = 0.0  # zeros / weights over the selected layers (the target the config names)

    @property
    def test_acc(self) -> float | None:
        return self.phases[-1].get("test_acc") if self.phases else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "phases": self.phases,
            "layer_sparsity": self.layer_sparsity,
            "overall": self.overall,
            "test_acc": self.test_acc,
        }


def plan_phases(model: nn.Module, config: SparsityConfig, epochs: int) -> list[Phase]:
    """The phases of ``config`` over ``epochs`` total epochs (every method spends exactly ``epochs``)."""
    names = list(check_model(model, config))
    target = config.target()
    if config.method == "magnitude" and config.schedule == "oneshot":
        return [("prune", lambda m: mask_layers_(m, config, target), epochs)]
    if config.method == "magnitude":
        steps = min(config.ramp_phases, epochs)
        base, extra = divmod(epochs, steps)
        phases: list[Phase] = []
        for k in range(1, steps + 1):
            level = cubic_sparsity(k, steps, target)
            if config.parsed.kind == "nm":
                level = target  # N:M has one level; the ramp only spreads training
            phases.append((f"ramp {level:.3f}", _masker(config, level), base + (1 if k <= extra else 0)))
        return phases
    groups = partitions(names, config.partitions)
    final = config.final_epochs or config.phase_epochs
    cycles = (epochs - final) // config.phase_epochs
    if cycles < 1:
        raise ConfigError(
            f"GaP needs a grow phase of {config.phase_epochs} epoch(s) and a final sparse phase of {final}; "
            f"{epochs} epochs is too few: raise epochs or lower phase_epochs / final_epochs"
        )
    phases = []
    for k in range(cycles):
        grow = groups[k % len(groups)]
        previous = groups[(k - 1) % len(groups)] if k else None
        phases.append(
            (
                f"grow {k % len(groups)}",
                _gap_step(config, target, groups, grow, previous),
                config.phase_epochs,
            )
        )
    last = groups[(cycles - 1) % len(groups)]
    final_epochs = epochs - cycles * config.phase_epochs
    phases.append(("final sparse", lambda m: mask_layers_(m, config, target, last), final_epochs))
    return phases


def _masker(config: SparsityConfig, level: float) -> Callable[[nn.Module], None]:
    return lambda m: mask_layers_(m, config, level)


def _gap_step(
    config: SparsityConfig,
    target: float,
    groups: list[list[str]],
    grow: list[str],
    previous: list[str] | None,
) -> Callable[[nn.Module], None]:
    """One grow phase's mask update. Every partition is masked on its own, at the start as at each
    prune-back: with one threshold over the whole model, a partition that a short run never regrows
    would keep the whole model's split and the total would miss the target (global scope)."""

    def step(model: nn.Module) -> None:
        if previous is None:
            for group in groups:  # every layer sparse, from trained weights or from init
                mask_layers_(model, config, target, group)
        else:
            mask_layers_(model, config, target, previous)  # prune the last dense partition back
        grow_dense_(model, grow)

    return step


def sparsify(
    model: nn.Module,
    config: SparsityConfig,
    train_loader: Any,
    test_loader: Any,
    train_config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    keep_masks: bool = False,
    device: str = "cpu",
    loss_fn: Any = None,
) -> SparsifyResult:
    """Sparsify ``model`` in place over ``train_config.epochs`` epochs in total; masks removed at the end.

    ``train_config`` is each phase's recipe (its epochs are the total; each phase runs its share with
    ``seed + phase``, and with its own lr schedule or, ``config.restart_lr=False``, its slice of one).
    ``keep_masks=True`` leaves the prune buffers for inspection.
    ``loss_fn`` replaces cross-entropy in every phase, as in :func:`netsculpt.train.train` (a
    :class:`netsculpt.train.DistillationLoss` from the dense model distils while the masks tighten).
    """
    materialised(model, "sparsify")  # masks need the weights' shapes
    phases = plan_phases(model, config, train_config.epochs)
    result = SparsifyResult()
    root = Path(out_dir) if out_dir is not None else None
    done = 0  # epochs of the earlier phases: where this phase sits in one shared lr schedule
    for index, (label, update, epochs) in enumerate(phases):
        update(model)
        phase_config = _phase_config(train_config, config, epochs, index, done)
        done += epochs
        folder = root / f"phase-{index:02d}" if root is not None else None
        if folder is not None and (folder / "result.json").is_file() and resume:
            _load_phase(model, folder, {"train": train_loader, "test": test_loader})
            saved = read_json_file(folder / "result.json")
            record = {"phase": label, "epochs": epochs, "test_acc": saved.get("final_acc"), "resumed": True}
        else:
            if folder is not None and folder.exists() and not resume and any(folder.iterdir()):
                raise ConfigError(
                    f"{str(root)!r} holds an earlier run; pass resume=True or use an empty out_dir"
                )
            run = train(
                model,
                train_loader,
                test_loader,
                phase_config,
                out_dir=folder,
                resume=resume,
                device=device,
                loss_fn=loss_fn,
            )
            record = {"phase": label, "epochs": epochs, "test_acc": run.final_acc}
        result.phases.append(record)
    result.layer_sparsity = sparsity_of(model)
    selected = target_layers(model, config.filter_fn)
    sizes = {n: m.weight.numel() for n, m in selected.items()}
    result.overall = sum(result.layer_sparsity[n] * k for n, k in sizes.items()) / max(sum(sizes.values()), 1)
    if not keep_masks:
        remove_masks_(model)
    if root is not None:
        write_json(root / "sparsify.json", {"config": config.to_dict(), **result.to_dict()})
    return result


def _phase_config(
    train_config: TrainConfig, config: SparsityConfig, epochs: int, index: int, done: int
) -> TrainConfig:
    """Phase ``index``'s recipe: ``epochs`` of it, its own seed, and (no restarts) the lr schedule's slice
    after the ``done`` epochs of the earlier phases.

    Warm-up happens once: a restarting phase after the first starts from trained weights, which need no
    warm-up (a GaP or ramp phase is often one epoch, which the preset's warm-up would fill, so every
    ``epochs`` was refused), and the first phase keeps at most ``epochs - 1`` warm-up epochs so its
    schedule still decays. With one schedule over every phase the warm-up is that schedule's start."""
    seed = train_config.seed + index
    if config.restart_lr:
        warmup = train_config.warmup_epochs if train_config.schedule == "constant" else epochs - 1
        warmup = min(train_config.warmup_epochs, warmup) if index == 0 else 0
        return dataclasses.replace(train_config, epochs=epochs, seed=seed, warmup_epochs=warmup)
    return dataclasses.replace(
        train_config,
        epochs=epochs,
        seed=seed,
        schedule_offset=train_config.schedule_offset + done,
        schedule_epochs=train_config.schedule_span,
    )


def _load_phase(model: nn.Module, folder: Path, loaders: dict[str, Any]) -> None:
    """A finished phase's weights, and the random state it ended with: the loaders' shuffle generators
    carry over from phase to phase, so a skipped phase must leave them where it left them, or the next
    phase would see other batches than an uninterrupted run does."""
    from netsculpt.fileio import load_state_dict_file
    from netsculpt.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, load_model_state, restore_rng

    try:  # a damaged file was a SafetensorError traceback from deep inside safetensors
        weights = load_state_dict_file(folder / "model.safetensors")
    except CheckpointError as exc:
        raise CheckpointError(
            f"{exc}; it is the result of the finished phase {folder.name}: delete the folder "
            f"{str(folder)!r} and rerun with resume to redo that phase"
        ) from None
    load_model_state(model, weights, str(folder))
    checkpoint = folder / CHECKPOINT_NAME
    if checkpoint.is_file():
        restore_rng(load_checkpoint(checkpoint)["rng"], loaders)
