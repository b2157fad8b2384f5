"""Pruning what people deploy: a detector on ``digits_detect`` and a segmenter on ``digits_seg``.

For each model: train from random init (checkpoint per epoch, resumable), prune to <= 0.5x MACs with
netsculpt's ``fisher`` and ``l1`` (``Target(macs=0.5)``, exact mode) and with Torch-Pruning 1.6.1, then
fine-tune every pruned model with the same budget; print the test metric (COCO mAP@[.5:.95] / mAP@.5,
mIoU) of every row and batch-1 one-thread latency before/after (PyTorch and ONNX Runtime) with the CPU
calibration beside the timings. Parts run separately (each well under 15 minutes except training,
which resumes) and write JSON beside ``--out``; ``--part report`` assembles ``benchmarks/results/
detection.txt``. Selection never looks at the test canvases: the schedule is fixed in advance.

    PYTHONPATH=src:benchmarks python benchmarks/detection.py --part train-det --cache DIR
    ... --part train-seg | prune-det | prune-seg | latency | report
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from _dense_models import GraySegmenter, build_detector, fit

from netsculpt.data.canvases import detection_collate, digits_detect, digits_seg

TRAIN_N, TEST_N = 4000, 1000
DET_EPOCHS, SEG_EPOCHS = 12, 9
SEG_LR = 4e-3  # the small segmenter from scratch; 2e-3 on LR-ASPP-Large was undertrained in 6 epochs
FINETUNE_EPOCHS = 2  # the same budget for every pruned row
BATCH = 16


def det_loaders(train_n: int = TRAIN_N, test_n: int = TEST_N):
    train = torch.utils.data.DataLoader(
        digits_detect("train", train_n), batch_size=BATCH, shuffle=True, collate_fn=detection_collate
    )
    test = torch.utils.data.DataLoader(
        digits_detect("test", test_n), batch_size=32, collate_fn=detection_collate
    )
    return train, test


def seg_loaders(train_n: int = TRAIN_N, test_n: int = TEST_N):
    train = torch.utils.data.DataLoader(digits_seg("train", train_n), batch_size=BATCH, shuffle=True)
    test = torch.utils.data.DataLoader(digits_seg("test", test_n), batch_size=32)
    return train, test


def det_step(model, batch):
    images, targets = batch
    return sum(model(images, targets).values())


def seg_step(model, batch):
    images, masks = batch
    return torch.nn.functional.cross_entropy(model(images), masks)


def _write(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def train_part(kind: str, cache: Path, epochs: int | None = None) -> None:
    torch.manual_seed(0)
    if kind == "det":
        model, (train, test), step, lr = build_detector(), det_loaders(), det_step, 2e-3
        epochs = epochs or DET_EPOCHS
    else:
        model, (train, test), step, lr = GraySegmenter(), seg_loaders(), seg_step, SEG_LR
        epochs = epochs or SEG_EPOCHS
    t0 = time.perf_counter()
    fit(model, train, step, epochs=epochs, lr=lr, ckpt=cache / f"{kind}_train.ckpt", label=f"train {kind}")
    torch.save(model.state_dict(), cache / f"{kind}_base.pt")
    from netsculpt.tasks import get_task

    task = get_task("detection" if kind == "det" else "segmentation", num_classes=11)
    metrics = task.evaluate(model, test)
    print(f"{kind} base: {metrics} ({time.perf_counter() - t0:.0f} s)", flush=True)
    _write(cache / f"{kind}_base.json", {"metrics": metrics, "epochs": epochs})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (train parts)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.part in ("train-det", "train-seg"):
        train_part(args.part.split("-")[1], args.cache, args.epochs)
    else:
        raise SystemExit(f"unknown part {args.part!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
