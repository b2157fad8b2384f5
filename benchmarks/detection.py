"""Pruning what people deploy: a detector on ``digits_detect`` and a segmenter on ``digits_seg``.

For each model: train from random init (checkpoint per epoch, resumable), prune to <= 0.5x MACs with
netsculpt's ``fisher`` and ``l1`` (``Target(macs=0.5)``, exact mode) and with Torch-Pruning 1.6.1, then
fine-tune every pruned model with the same budget; print the test metric (COCO mAP@[.5:.95] / mAP@.5,
mIoU) of every row and batch-1 one-thread latency before/after (PyTorch and ONNX Runtime) with the CPU
calibration beside the timings. Parts run separately (each well under 15 minutes except training,
which resumes) and write JSON beside ``--out``; ``--part report`` assembles ``benchmarks/results/
detection.txt``. Selection never looks at the test canvases: the schedule is fixed in advance.

    PYTHONPATH=src:benchmarks python benchmarks/detection.py --part train-det --cache DIR
    ... --part train-seg [--lr X] (each candidate lr of _dense_seg_train.SEG_LRS), then pick-seg
    ... --part prune-det | prune-seg | control-det | longer-det | latency | report
    ... --part longer6-det [--methods l1,fisher,none]   (6x equal fine-tune, KD chosen on val)
    ... --part kd6-det [--methods ...]   (6x distilled; test rows only if it beats plain 6x on val)
    ... --part recipe-seg, recipe-rows-seg [--methods fisher,l1,none,tp] [--seed N], recipe-report-seg
        (the segmenter's fine-tune recipe, distilled + hints and/or longer, chosen on val; _dense_recipe)
    ... --part recipe2-seg, recipe2-rows-seg [--methods ...] [--seed N], recipe2-report-seg
        (a second grid at lr 8e-3: fisher calibration size, distillation; _dense_recipe2)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from _dense_latency import latency_part
from _dense_longer import METHODS, kd6_part, longer6_part
from _dense_models import GraySegmenter, build_detector, fit
from _dense_prune import Setup, control_part, evaluate, longer_part, prune_part
from _dense_recipe import ROWS, choose_recipe, recipe_report, recipe_rows
from _dense_recipe2 import choose_recipe2, recipe2_report, recipe2_rows
from _dense_report import report
from _dense_seg_train import SEG_EPOCHS, SEG_LRS, SEG_SPEC, pick, seg_data, train_candidate

from netsculpt.data.canvases import detection_collate, digits_detect

TRAIN_N, TEST_N = 4000, 1000
DET_EPOCHS = 12
FINETUNE_N = 2000  # the same budget for every pruned row: one pass over the first 2000 training canvases
# (125 steps, 10% warm-up then cosine; full training epochs took 10-14 min on the shared machine)
BATCH = 16


VAL_N = 200  # held-out canvases of the TRAINING digits (seed 1): fine-tune settings are chosen on them
FT_LRS = (5e-4, 2e-3)  # fine-tune peak lr candidates, chosen on VAL_N with the fisher row


def _loader(dataset, *, train: bool = False, det: bool = True):
    collate = detection_collate if det else None
    return torch.utils.data.DataLoader(
        dataset, batch_size=BATCH if train else 32, shuffle=train, collate_fn=collate
    )


def det_loaders(train_n: int = TRAIN_N, test_n: int = TEST_N):
    return _loader(digits_detect("train", train_n), train=True), _loader(digits_detect("test", test_n))


def seg_loaders(train_n: int = TRAIN_N, test_n: int = TEST_N):
    train = _loader(seg_data("train", train_n), train=True, det=False)
    return train, _loader(seg_data("test", test_n), det=False)


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


def train_part(kind: str, cache: Path, epochs: int | None = None, lr: float | None = None) -> None:
    torch.manual_seed(0)
    if kind == "seg":  # candidates per lr, chosen on held-out training canvases by --part pick-seg
        train, _ = seg_loaders()
        for candidate in (lr,) if lr else SEG_LRS:
            train_candidate(cache, candidate, epochs or SEG_EPOCHS, train)
        return
    model, (train, test), step, lr = build_detector(), det_loaders(), det_step, 2e-3
    epochs = epochs or DET_EPOCHS
    t0 = time.perf_counter()
    fit(model, train, step, epochs=epochs, lr=lr, ckpt=cache / f"{kind}_train.ckpt", label=f"train {kind}")
    torch.save(model.state_dict(), cache / f"{kind}_base.pt")
    from netsculpt.tasks import get_task

    task = get_task("detection", num_classes=11)
    metrics = task.evaluate(model, test)
    print(f"{kind} base: {metrics} ({time.perf_counter() - t0:.0f} s)", flush=True)
    _write(cache / f"{kind}_base.json", {"metrics": metrics, "epochs": epochs})


def _tp_det_outputs(model):
    head = model.head
    return [
        head.classification_head.cls_logits,
        head.regression_head.bbox_reg,
        head.regression_head.bbox_ctrness,
    ]


def _tp_det_ignored(model):
    return [model.head]  # the output convs alone leave GroupNorm(32, 32) towers that fail on P7


def _tp_seg_ignored(model):
    return [model.net.classifier.low_classifier, model.net.classifier.high_classifier]


def make_setup(kind: str, cache: Path, smoke: bool = False) -> tuple[Setup, torch.nn.Module]:
    """The trained model (from the train part's weights) and how the prune parts feed and score it."""
    train_n, val_n, test_n = (64, 32, 32) if smoke else (TRAIN_N, VAL_N, TEST_N)
    det = kind == "det"
    data = digits_detect if det else seg_data
    model = build_detector() if det else GraySegmenter()
    model.load_state_dict(torch.load(cache / f"{kind}_base.pt", weights_only=True))
    side = 128 if det else SEG_SPEC.size
    image = torch.rand(1, side, side)
    setup = Setup(
        kind=kind,
        task="detection" if det else "segmentation",
        metric="map" if det else "miou",
        build=build_detector if det else GraySegmenter,
        example=([image],) if det else (image[None],),
        tp_example=[image] if det else image[None],
        tp_ignored=_tp_det_ignored if det else _tp_seg_ignored,
        tp_outputs=_tp_det_outputs if det else None,
        finetune=_loader(data("train", min(train_n, FINETUNE_N)), train=True, det=det),
        calib=_loader(data("train", train_n), det=det),
        val=_loader(data("train", val_n, seed=1), det=det),
        test=_loader(data("test", test_n), det=det),
        step=det_step if det else seg_step,
        ft_lrs=FT_LRS,
        calib_batches=2 if smoke else 16,
    )
    return setup, model.eval()


def prune_det_seg(kind: str, cache: Path, smoke: bool) -> None:
    setup, base = make_setup(kind, cache, smoke)
    if not (cache / f"{kind}_base_val.json").exists():
        metrics = {k: round(float(v), 4) for k, v in evaluate(setup, base, setup.val).items()}
        _write(cache / f"{kind}_base_val.json", {"val": metrics})
    summary = prune_part(setup, base, cache)
    print(json.dumps(summary, indent=1), flush=True)


def latency(kind: str, cache: Path, smoke: bool) -> None:
    setup, base = make_setup(kind, cache, smoke)
    record = latency_part(setup, base, rounds=1 if smoke else 3, runs=3 if smoke else 20)
    _write(cache / f"{kind}_latency.json", record)


# the segmenter's two fine-tune recipe searches: choose on val, test rows, report; same three steps each
RECIPES = {
    "recipe": (choose_recipe, recipe_rows, recipe_report),
    "recipe2": (choose_recipe2, recipe2_rows, recipe2_report),
}
RECIPE_PARTS = {f"{name}{step}-seg": (name, step) for name in RECIPES for step in ("", "-rows", "-report")}


def recipe_part(name: str, step: str, args: argparse.Namespace) -> None:
    """``--part {name}-seg`` / ``{name}-rows-seg`` / ``{name}-report-seg`` of one recipe search."""
    choose, rows, report_of = RECIPES[name]
    if step == "-report":
        text = report_of("seg", args.cache, "miou", "mIoU")
        print(text, end="")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_name(f"{args.out.name}_seg_{name}.txt").write_text(text)
    elif step == "-rows":
        methods = tuple(args.methods.split(",")) if args.methods != ",".join(METHODS) else ROWS
        rows(*make_setup("seg", args.cache, args.smoke), args.cache, methods, args.seed)
    else:
        choose(*make_setup("seg", args.cache, args.smoke), args.cache)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (train parts)")
    parser.add_argument("--lr", type=float, default=None, help="train-seg: one candidate peak lr")
    parser.add_argument("--smoke", action="store_true", help="tiny data sizes: checks the code runs")
    parser.add_argument(
        "--only-trained", action="store_true", help="pick-seg: among the candidates in the cache only"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="rows of the longer6 part, in order")
    parser.add_argument(
        "--seed", type=int, default=0, help="longer6: another fine-tune draw (0: the table's)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/detection"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.part in ("train-det", "train-seg"):
        train_part(args.part.split("-")[1], args.cache, args.epochs, args.lr)
    elif args.part == "pick-seg":
        pick(args.cache, seg_loaders()[1], only_trained=args.only_trained)
    elif args.part in RECIPE_PARTS:
        recipe_part(*RECIPE_PARTS[args.part], args)
    elif args.part in ("prune-det", "prune-seg"):
        prune_det_seg(args.part.split("-")[1], args.cache, args.smoke)
    elif args.part in ("control-det", "control-seg"):
        control_part(*make_setup(args.part.split("-")[1], args.cache, args.smoke), args.cache)
    elif args.part in ("longer-det", "longer-seg"):
        longer_part(*make_setup(args.part.split("-")[1], args.cache, args.smoke), args.cache)
    elif args.part in ("longer6-det", "longer6-seg"):
        setup, base = make_setup(args.part.split("-")[1], args.cache, args.smoke)
        longer6_part(setup, base, args.cache, tuple(args.methods.split(",")), args.seed)
    elif args.part in ("kd6-det", "kd6-seg"):
        setup, base = make_setup(args.part.split("-")[1], args.cache, args.smoke)
        kd6_part(setup, base, args.cache, tuple(args.methods.split(",")))
    elif args.part in ("latency-det", "latency-seg"):
        latency(args.part.split("-")[1], args.cache, args.smoke)
    elif args.part == "report":
        report(args.cache, args.out)
    else:
        raise SystemExit(f"unknown part {args.part!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
