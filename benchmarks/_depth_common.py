"""Helpers the parts of ``benchmarks/depth.py`` (and ``depth_width_select.py``) share: the held-out split,
training that stops after a few epochs and resumes, the base models, atomic JSON."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

import netsculpt as ns
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, train


def _loaders(
    args: argparse.Namespace, resize: int = 32, augment: bool = False, order_seed: int | None = None
):
    """The base's split (seed 0) every time; ``order_seed`` only reorders/augments the training batches
    (a fine-tune repeat: without it every seed saw identical batches and gave identical weights)."""
    return holdout_loaders(
        "mnist5k",
        val_size=args.val_size,
        batch_size=64,
        limit=args.limit,
        resize=resize,
        channels=3,
        augment=augment,
        shift=2,
        order_seed=order_seed,
    )


def _stop_after(epochs: int):
    """``on_epoch_end`` that ends this invocation after ``epochs`` epochs (the checkpoint is written
    first, so the next invocation with ``resume=True`` continues bit-identically): parts stay < 40 min."""
    done = [0]

    def callback(record: object) -> bool:
        done[0] += 1
        return done[0] >= epochs

    return callback


def _train_base(args: argparse.Namespace, arch: str, name: str) -> tuple[Any, float, bool]:
    """Train ``arch`` on every training image but the held-out ones, resumable in parts of
    ``--part-epochs`` epochs (run dir ``{name}_run`` in the cache); saved as ``name`` once all ``--epochs``
    are done. Returns the training result, this part's seconds and whether it finished."""
    train_l, held, test_l = _loaders(args, augment=True)
    torch.manual_seed(0)
    model = ns.create_model(arch, num_classes=10)
    start = time.perf_counter()
    config = TrainConfig(epochs=args.epochs, lr=0.05, seed=0, augment=True, augment_shift=2)
    result = train(
        model, train_l, test_l, config, out_dir=args.cache / f"{name}_run", resume=True, val_loader=held,
        on_epoch_end=_stop_after(args.part_epochs),
    )  # fmt: skip
    seconds, finished = time.perf_counter() - start, result.epochs_run >= args.epochs
    if finished:
        ns.save(model, args.cache / name, extra={"input_shape": [1, 3, 32, 32]})
    return result, seconds, finished


def _write_json(path: Path, data: object) -> None:
    import json

    from netsculpt.fileio import atomic_write

    text = json.dumps(data, indent=1)
    atomic_write(path, lambda tmp: tmp.write_text(text))
