"""Training configuration: one dataclass that is the whole recipe, with named presets.

The config is stored inside every checkpoint and compared on resume, so it must round-trip through JSON
exactly and refuse values that would only fail later, deep inside a training run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from netsculpt.errors import ConfigError
from netsculpt.registry import Registry

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")

#: Named recipes. Each value is a dict of TrainConfig overrides, so a preset is itself plain data.
PRESETS: Registry[dict[str, Any]] = Registry("training preset")


@dataclass
class TrainConfig:
    """Everything that decides how a model is trained (the data loaders are built by the caller).

    ``batch_size``, ``augment`` and ``augment_shift`` (the largest random shift in pixels; ``None`` is 1/8
    of the image side) are not read by :func:`netsculpt.train.train` itself: they are the
    recipe for whoever builds the loaders (the CLI, the benchmark), kept here so one config describes the
    whole run and is saved with it. ``checkpoint_activations`` recomputes each block's activations in
    the backward pass instead of storing them (``train/act_checkpoint.py``): less memory, about one
    more forward per step, the same weights.

    ``schedule_offset`` / ``schedule_epochs`` make this call one slice of a longer learning-rate schedule:
    epochs ``[schedule_offset, schedule_offset + epochs)`` of a ``schedule_epochs``-epoch schedule (``None``:
    the schedule is this call's ``epochs``). Training split into calls (sparsity phases) then follows one
    warmup + decay over all of them instead of restarting the lr in every call.

    ``bn_l1`` is network slimming's sparsity strength (lambda): ``lambda * sign(gamma)`` is added after
    backward to the scale gradient of every affine BatchNorm whose channels a prune can remove (traced on
    the first training batch; all of them, with a warning, when that fails: ``train/slimming.py``),
    pushing the scales of unneeded channels to zero before a ``bn_scale`` prune; 0 (default) trains as
    usual.
    """

    VERSION: ClassVar[int] = 1

    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    seed: int = 0
    grad_clip: float | None = None
    augment: bool = False
    augment_shift: int | None = None
    checkpoint_activations: bool = False
    schedule_offset: int = 0
    schedule_epochs: int | None = None
    bn_l1: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the bad field and the accepted values."""
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"optimizer={self.optimizer!r} is not supported; use one of {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"schedule={self.schedule!r} is not supported; use one of {', '.join(SCHEDULES)}"
            )
        _check_int(self.epochs, "epochs", minimum=1)
        _check_int(self.batch_size, "batch_size", minimum=1)
        _check_int(self.warmup_epochs, "warmup_epochs", minimum=0)
        _check_int(self.seed, "seed", minimum=0)
        _check_int(self.schedule_offset, "schedule_offset", minimum=0)
        if self.schedule_epochs is not None:
            _check_int(self.schedule_epochs, "schedule_epochs", minimum=1)
            if self.schedule_offset + self.epochs > self.schedule_epochs:
                raise ConfigError(
                    f"schedule_offset={self.schedule_offset} + epochs={self.epochs} runs past the "
                    f"{self.schedule_epochs}-epoch schedule; raise schedule_epochs or lower the offset"
                )
        elif self.schedule_offset:
            raise ConfigError(
                f"schedule_offset={self.schedule_offset} needs schedule_epochs (the whole schedule's length)"
            )
        span = self.schedule_span
        if self.warmup_epochs >= span and self.schedule != "constant":
            raise ConfigError(
                f"warmup_epochs={self.warmup_epochs} leaves no epoch for the {self.schedule} schedule "
                f"(epochs={span}); lower warmup_epochs (e.g. 0) or raise epochs"
            )
        _check_float(self.lr, "lr", positive=True)
        _check_float(self.momentum, "momentum")
        _check_float(self.weight_decay, "weight_decay")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum={self.momentum} must be in [0, 1)")
        if self.nesterov and self.optimizer == "sgd" and self.momentum == 0.0:
            raise ConfigError("nesterov=True needs momentum > 0; set momentum (e.g. 0.9) or nesterov=False")
        _check_float(self.label_smoothing, "label_smoothing")
        _check_float(self.bn_l1, "bn_l1")
        if self.bn_l1 >= 1.0:
            raise ConfigError(
                f"bn_l1={self.bn_l1} would swamp the task gradient (network slimming uses 1e-5 to 1e-4); "
                "use a value in [0, 1)"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing={self.label_smoothing} must be in [0, 1)")
        if self.grad_clip is not None:
            _check_float(self.grad_clip, "grad_clip", positive=True)
        if self.augment_shift is not None:
            _check_int(self.augment_shift, "augment_shift", minimum=0)
        for name in ("nesterov", "augment", "checkpoint_activations"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def schedule_span(self) -> int:
        """Epochs of the whole learning-rate schedule this call is part of."""
        return self.epochs if self.schedule_epochs is None else self.schedule_epochs

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, with a format version so old files stay readable."""
        return {"version": self.VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not be silently ignored),
        missing ones take their defaults (configs written before a field existed still load)."""
        if not isinstance(data, dict):
            raise ConfigError(f"a training config must be a mapping, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", cls.VERSION)
        if version != cls.VERSION:
            raise ConfigError(
                f"training config version {version!r} is not supported (expected {cls.VERSION})"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown training config keys {unknown}; valid keys: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated like a new config)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """A named recipe from :data:`PRESETS`, optionally with some fields overridden."""
        return cls(**{**PRESETS.get(name), **overrides})


def _check_int(value: object, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_float(value: object, name: str, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")


PRESETS.register("default", {})
# LeNet-5 (20-50-500) on the 4,000 bundled MNIST training digits. Reasoning, not a seed search:
# a 4k-image set gives only 32 steps per epoch at batch 128, so a smaller batch (64) doubles the number of
# updates for the same compute; SGD+Nesterov at lr 0.05 with a one-epoch warmup is stable for this net,
# and cosine annealing to zero over 20 epochs lets the last epochs settle. Light augmentation (small shifts
# and rotations) stands in for the 56k digits we do not have; mild label smoothing curbs overconfidence on
# a small training set.
PRESETS.register(
    "lenet5_mnist5k",
    {
        "epochs": 20,
        "batch_size": 64,
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "label_smoothing": 0.05,
        "augment": True,
    },
)
# Fine-tuning an already trained (pruned) model, with or without distillation. The weights start near a
# good solution, so the peak learning rate is a fifth of the from-scratch one and there is no warmup;
# cosine decay to zero over 10 epochs settles the surviving channels. Batch 64 and light shifts as in
# lenet5_mnist5k (small data sets); shifts also suit distillation, whose teacher labels each shifted view.
# No label smoothing: the distillation term already supplies soft targets.
PRESETS.register(
    "finetune",
    {
        "epochs": 10,
        "batch_size": 64,
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "cosine",
        "warmup_epochs": 0,
        "label_smoothing": 0.0,
        "augment": True,
    },
)
# Detection / segmentation from the CLI (`--task`): the schedule examples/detector_digits.yaml trains
# fcos_slim with (AdamW, lr 2e-3, weight decay 1e-4, gradients clipped at 10: a detector's box loss spikes
# early), batch 16 of 128 px canvases; no warmup so that short runs (--epochs 1) need no other flag. The
# canvases are never augmented (a shift would not move the boxes / masks).
PRESETS.register(
    "dense",
    {"epochs": 24, "batch_size": 16, "optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4,
     "schedule": "cosine", "warmup_epochs": 0, "grad_clip": 10.0, "label_smoothing": 0.0, "augment": False},
)  # fmt: skip
# Fine-tuning / distilling a pruned dense model: the recipe's distill stage (lr 1e-3, 12 epochs).
PRESETS.register("dense_finetune", {**PRESETS.get("dense"), "epochs": 12, "lr": 1e-3})
