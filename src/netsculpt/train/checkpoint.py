"""Training checkpoints: everything needed to continue a run bit for bit, stored without pickle.

A resumed run must end with the same weights as an uninterrupted one, so beyond the model and optimizer a
checkpoint holds the scheduler step, every random number generator that training draws from (torch,
numpy, Python ``random``, and the loaders' own generators), the epoch and the history. All of it is
converted to tensors and plain data, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.fileio import safe_torch_load, torch_save
from netsculpt.train.config import TrainConfig
from netsculpt.train.data_id import fingerprints_match

FORMAT = "netsculpt.train.checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
_REQUIRED = ("epoch", "config", "history", "model", "optimizer", "scheduler", "rng")


def loader_generators(loader: Any) -> list[torch.Generator]:
    """The distinct torch generators a DataLoader draws from, in a fixed order.

    That is the loader's own (shuffle order, worker seeds), its sampler's, and the dataset's (augmentation
    wrappers such as ``netsculpt.data.augment.RandomShift`` keep one as ``.generator``).
    """
    found: list[torch.Generator] = []
    candidates = [
        getattr(loader, "generator", None),
        getattr(getattr(loader, "sampler", None), "generator", None),
        getattr(getattr(getattr(loader, "batch_sampler", None), "sampler", None), "generator", None),
        getattr(getattr(loader, "dataset", None), "generator", None),
    ]
    for gen in candidates:
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def capture_rng(loaders: dict[str, Any]) -> dict[str, Any]:
    """Snapshot every generator training may draw from, as tensors and plain numbers."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(np_kind),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64).copy()),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
        "loaders": {name: [g.get_state() for g in loader_generators(ld)] for name, ld in loaders.items()},
    }


def restore_rng(state: dict[str, Any], loaders: dict[str, Any]) -> None:
    """Put every generator back where :func:`capture_rng` found it."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    for name, loader in loaders.items():
        gens, saved = loader_generators(loader), state["loaders"].get(name, [])
        if len(gens) != len(saved):
            raise CheckpointError(
                f"the {name} loader draws from {len(gens)} torch generator(s) but the checkpoint saved "
                f"{len(saved)}; resume with loaders built the same way as the interrupted run"
            )
        for gen, gen_state in zip(gens, saved):
            gen.set_state(gen_state)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    return torch_save(path, {"format": FORMAT, "version": VERSION, **payload})


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and check a training checkpoint; anything else (corrupt, foreign) is a CheckpointError."""
    data = safe_torch_load(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not a netsculpt training checkpoint (no {FORMAT!r} marker); "
            "point out_dir at a folder written by netsculpt.train, or start without resume=True"
        )
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"{str(path)!r} is a training checkpoint of version {data.get('version')!r}; "
            f"this netsculpt reads version {VERSION}"
        )
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise CheckpointError(f"{str(path)!r} is incomplete: it lacks {', '.join(missing)}")
    return data


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` with an error that says which checkpoint did not fit which model, and how."""
    state = _mask_keys_upgraded(model, state)
    mismatch = _state_mismatch(model.state_dict(), state)
    if mismatch:
        raise CheckpointError(
            f"the weights in {source} do not fit this {type(model).__name__}: {mismatch}; resume with the "
            "model and the settings that shape it (model name, --num-classes, widths, DKM --bits, ...) "
            "that wrote the checkpoint, or start a new out_dir"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(
            f"the weights in {source} do not fit this {type(model).__name__}: {' '.join(first)}; "
            "resume with the same architecture that wrote the checkpoint"
        ) from None


def _state_mismatch(wanted: dict[str, torch.Tensor], saved: dict[str, torch.Tensor], show: int = 3) -> str:
    """A short account of how two state dicts differ ('' if they fit): before, the whole of torch's
    message was passed on, every missing key of a ResNet listed on one line, the cause lost in it."""

    def some(names: list[str]) -> str:
        more = f" and {len(names) - show} more" if len(names) > show else ""
        return ", ".join(names[:show]) + more

    parts = []
    shapes = [
        f"{k} {list(saved[k].shape)} in the checkpoint vs {list(v.shape)} here"
        for k, v in wanted.items()
        if isinstance(v, torch.Tensor)
        and isinstance(saved.get(k), torch.Tensor)
        and saved[k].shape != v.shape
    ]
    if shapes:
        parts.append(f"{len(shapes)} tensor(s) differ in shape ({some(shapes)})")
    missing = [k for k in wanted if k not in saved]
    if missing:
        parts.append(f"{len(missing)} of this model's tensors are not in the checkpoint ({some(missing)})")
    unexpected = [k for k in saved if k not in wanted]
    if unexpected:
        parts.append(
            f"{len(unexpected)} of the checkpoint's tensors are not in this model ({some(unexpected)})"
        )
    return "; ".join(parts)


def _mask_keys_upgraded(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Sparse-training checkpoints written before masks became parametrizations name them
    ``<layer>.weight_orig`` / ``<layer>.weight_mask``; rename them so such a run still resumes."""
    if not any(k.endswith((".weight_orig", ".weight_mask")) for k in state):
        return state
    wanted = set(model.state_dict())
    renamed = {}
    for key, value in state.items():
        for old, new in ((".weight_orig", ".parametrizations.weight.original"),
                         (".weight_mask", ".parametrizations.weight.0.mask")):  # fmt: skip
            if key.endswith(old) and key not in wanted and key[: -len(old)] + new in wanted:
                key = key[: -len(old)] + new
        renamed[key] = value
    return renamed


# epochs may grow: continuing a finished run for longer is a legitimate use of resume. Activation
# checkpointing trades memory for time and trains the same weights, so it may be switched on resume.
_MAY_CHANGE = frozenset({"epochs", "checkpoint_activations"})


def _with_defaults(saved: Any) -> dict[str, Any]:
    """A saved config with the fields added since it was written set to their defaults (which are the
    behaviour that run had), so older checkpoints resume."""
    saved = dict(saved)
    defaults = TrainConfig().to_dict()
    return {**{k: v for k, v in defaults.items() if k not in saved}, **saved}


def _short(fingerprint: dict[str, Any]) -> str:
    """The transforms entry of a fingerprint, short enough for an error message."""
    value = fingerprint.get("transforms")
    return "built-in only" if value is None else value[: value.find(":") + 13]


def check_compatible(
    ckpt: dict[str, Any],
    config: TrainConfig,
    steps_per_epoch: int,
    path: Path,
    *,
    loss_recipe: dict[str, Any] | None = None,
    world_size: int = 1,
    data: dict[str, Any] | None = None,
) -> None:
    """Refuse to resume a run whose recipe, loss, data or process count changed: the result would match
    neither run."""
    current = config.to_dict()
    saved = _with_defaults(ckpt["config"])
    diff = sorted(
        k for k in set(saved) | set(current) if k not in _MAY_CHANGE and saved.get(k) != current.get(k)
    )
    if diff:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff)
        raise ConfigError(
            f"{str(path)!r} was written with a different training config ({details}); resume with the "
            "original config or start a new out_dir"
        )
    saved_loss = ckpt.get("loss")
    if saved_loss != loss_recipe:
        keys = sorted(k for k in set(saved_loss or {}) | set(loss_recipe or {})
                      if (saved_loss or {}).get(k) != (loss_recipe or {}).get(k))  # fmt: skip
        details = ", ".join(
            f"{k}: {(saved_loss or {}).get(k)!r} -> {(loss_recipe or {}).get(k)!r}" for k in keys
        )
        raise ConfigError(
            f"{str(path)!r} was written with a different loss ({details}); resume with the same loss "
            "(for distillation: the same teacher and settings) or start a new out_dir"
        )
    saved_steps = ckpt.get("steps_per_epoch")
    if saved_steps is not None and saved_steps != steps_per_epoch:
        raise ConfigError(
            f"the training loader has {steps_per_epoch} batches per epoch but {str(path)!r} was written "
            f"with {saved_steps}; resume with the same dataset and batch size"
        )
    saved_data = ckpt.get("data")
    if saved_data is not None and data is not None and not fingerprints_match(saved_data, data):
        transforms = ""
        if saved_data.get("transforms") != data.get("transforms"):
            transforms = f", per-item transforms {_short(saved_data)} -> {_short(data)}"
        raise ConfigError(
            f"the training data differs from the data {str(path)!r} was trained on ({saved_data['samples']} "
            f"samples, fingerprint {saved_data['sha256'][:12]} -> {data['samples']} samples, "
            f"{data['sha256'][:12]}{transforms}); resume with the same dataset, --limit, --resize and "
            "--channels (and your dataset's same transform), or start a new out_dir"
        )
    saved_world = int(ckpt.get("world_size", 1))
    if saved_world != world_size:
        raise ConfigError(
            f"{str(path)!r} was written by {saved_world} process(es) but this run has {world_size}; every "
            "rank's random state is part of the checkpoint, so resume with the same number of processes"
        )
