"""``--part train-seg`` / ``pick-seg`` of ``benchmarks/detection.py``: the segmenter trained to a plateau.

A 3-epoch LR-ASPP (mIoU 0.231) moved 6.5 points from one more fine-tune pass: pruning rows measured
against it said nothing. Here every candidate peak lr in ``SEG_LRS`` trains ``SEG_EPOCHS`` epochs
(AdamW, one warm-up epoch, cosine to 0, checkpoint per epoch, resumable), and after every epoch is
scored on the 200 held-out *training* canvases (``seg_data("train", 200, seed=1)``: other canvases of
the training digits, never a test digit). ``pick-seg`` keeps the candidate with the best final
validation mIoU, and only that model is scored on the test canvases. The per-epoch validation curve is
kept in ``seg_base.json`` so the report shows where it plateaued.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from _dense_models import GraySegmenter, fit

from netsculpt.data.canvases import CanvasSpec, DigitsCanvases
from netsculpt.tasks import get_task

SEG_LRS = (3e-3, 8e-3)  # candidate peak lrs, chosen between on the validation canvases
SEG_EPOCHS = 12  # 250 steps each (4000 canvases, batch 16)
VAL_N = 200
# The segmenter's canvases are drawn at 64 px with digits of 7-28 px: digits_seg's layout at half the
# scale (a quarter of the pixels). At 128 px a training step took 0.29 s of one core, and with ~12
# benchmarks sharing the 2 cores a 3-epoch run was all a session allowed; at 64 px it converges.
SEG_SPEC = CanvasSpec(size=64, scale=(7, 28))


def seg_data(split: str, n: int, seed: int = 0) -> DigitsCanvases:
    """``digits_seg`` canvases at the benchmark's ``SEG_SPEC`` (split's digits only, seeded)."""
    return DigitsCanvases(split, n, task="seg", seed=seed, spec=SEG_SPEC)


def _write(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def _val_loader():
    return torch.utils.data.DataLoader(seg_data("train", VAL_N, seed=1), batch_size=32)


def train_candidate(cache: Path, lr: float, epochs: int, train_loader) -> None:
    """One candidate: ``seg_cand_lr{lr}.pt`` when done, its validation curve in ``seg_cand_lr{lr}.json``."""
    tag = f"seg_cand_lr{lr:g}"
    history_path = cache / f"{tag}.json"
    history = json.loads(history_path.read_text()) if history_path.exists() else {}
    if history.get("done"):
        print(f"[{tag}] already trained", flush=True)
        return
    history.update(lr=lr, epochs=epochs)
    history.setdefault("curve", {})
    torch.manual_seed(0)
    model = GraySegmenter()
    task, val = get_task("segmentation", num_classes=11), _val_loader()

    def on_epoch(epoch: int, loss: float) -> None:
        metrics = {k: round(float(v), 4) for k, v in task.evaluate(model, val).items()}
        history["curve"][str(epoch)] = {"loss": round(loss, 4), **metrics}
        print(f"  [{tag}] epoch {epoch} val {metrics}", flush=True)
        _write(history_path, history)
        model.train()

    t0 = time.perf_counter()
    fit(model, train_loader, _seg_step, epochs=epochs, lr=lr, ckpt=cache / f"{tag}.ckpt", label=tag,
        on_epoch=on_epoch)  # fmt: skip
    torch.save(model.state_dict(), cache / f"{tag}.pt")
    history["done"] = True
    history["train_s_this_run"] = round(time.perf_counter() - t0)
    _write(history_path, history)


def _seg_step(model, batch):
    images, masks = batch
    return torch.nn.functional.cross_entropy(model(images), masks)


def pick(cache: Path, test_loader, only_trained: bool = False) -> dict:
    """The candidate with the best final validation mIoU becomes ``seg_base.pt``; only it sees the test.
    ``only_trained``: pick among the candidates in the cache (a rerun of the lr an earlier run chose on
    validation, whose comparison is in the docs); the record lists which were not retrained."""
    finals, missing = {}, []
    for lr in SEG_LRS:
        path = cache / f"seg_cand_lr{lr:g}.json"
        history = json.loads(path.read_text()) if path.exists() else {}
        if history.get("done"):
            finals[lr] = history
        else:
            missing.append(lr)
    if not finals or (missing and not only_trained):
        raise SystemExit(f"candidates {missing} not trained yet: run --part train-seg --lr X for each")
    best = max(finals, key=lambda lr: finals[lr]["curve"][str(finals[lr]["epochs"])]["miou"])
    shutil.copyfile(cache / f"seg_cand_lr{best:g}.pt", cache / "seg_base.pt")
    model = GraySegmenter()
    model.load_state_dict(torch.load(cache / "seg_base.pt", weights_only=True))
    task = get_task("segmentation", num_classes=11)
    metrics = {k: round(float(v), 4) for k, v in task.evaluate(model.eval(), test_loader).items()}
    record = {
        "metrics": metrics,
        "epochs": finals[best]["epochs"],
        "lr": best,
        "val_final_by_lr": {f"{lr:g}": h["curve"][str(h["epochs"])]["miou"] for lr, h in finals.items()},
        "val_curve": {e: c["miou"] for e, c in finals[best]["curve"].items()},
        "not_retrained": [f"{lr:g}" for lr in missing],
    }
    print(f"seg base (lr {best:g} chosen on val): test {metrics}; {json.dumps(record)}", flush=True)
    _write(cache / "seg_base.json", record)
    return record
