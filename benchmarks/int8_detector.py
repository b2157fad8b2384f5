"""int8 detectors: fcos_slim on digits_detect, float vs int8 backbone (and backbone + head) per runtime.

Trains fcos_slim briefly (128 px canvases, ``--train-n`` training canvases, ``--epochs``; resumable
checkpoint in ``--cache``), then quantizes it with ``netsculpt.weights.int8_detector.quantize_detector``
on ONNX Runtime, OpenVINO / NNCF and PT2E, each ``--parts`` (``backbone``: body + FPN;
``backbone+head``: with the head's towers in the same graph; ``backbone+head+float-predictors``:
that, with the head's prediction convs left float, ONNX Runtime and OpenVINO only), all calibrated on
the same 8 training batches, and prints side by side: COCO mAP@[.5:.95] / mAP@.5 on the test canvases
(never used for any choice), the backbone features' relative error against float, and the whole
detector's latency (transform, backbone, head, decoding, NMS) at batch 1, one thread, timed by
``netsculpt bench``'s loop in alternating rounds. A "float backbone on ONNX Runtime" row separates what
int8 gains from what ONNX Runtime's float kernels gain.
Results: benchmarks/results/int8_detector_2026-12-07.txt (backbone only),
benchmarks/results/int8_detector_head_2026-12-07.txt (both parts),
benchmarks/results/int8_detector_float_predictors_2026-12-07.txt (float predictors).

    PYTHONPATH=src:benchmarks python benchmarks/int8_detector.py --cache /tmp/int8det-cache
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from _dense_models import build_detector, fit
from torch.utils.data import DataLoader

from netsculpt.data.canvases import detection_collate, digits_detect
from netsculpt.runtimes import get_runtime
from netsculpt.runtimes.bench import time_alternating
from netsculpt.tasks import get_task
from netsculpt.weights.int8_detector import BackboneHead, Int8Backbone, assemble, quantize_detector

RUNTIMES = ("onnxruntime", "openvino", "torch")
FLOAT_PREDICTORS = "+float-predictors"
PARTS = ("backbone", "backbone+head", f"backbone+head{FLOAT_PREDICTORS}")


def _step(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
    images, targets = batch
    return sum(model(images, targets).values())


def _relative_error(model: torch.nn.Module, int8: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """The worst pyramid level's and head output's ||int8 - float|| / ||float|| on the backbone's input
    ``x`` (the head of a backbone-only int8 detector is float, on the int8 features)."""
    with torch.no_grad():
        ref, got = model.backbone(x), int8.backbone(x)
        ref_head, got_head = model.head(list(ref.values())), int8.head(list(got.values()))
    feature = max(float((got[k] - ref[k]).norm() / ref[k].norm()) for k in ref)
    return feature, max(float((got_head[k] - ref_head[k]).norm() / ref_head[k].norm()) for k in ref_head)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--train-n", type=int, default=1200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--test-n", type=int, default=500)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--parts", nargs="+", default=["backbone", "backbone+head"], choices=PARTS)
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = build_detector()
    train = DataLoader(digits_detect("train", args.train_n), batch_size=16, shuffle=True,
                       collate_fn=detection_collate)  # fmt: skip
    t0 = time.perf_counter()
    fit(model, train, _step, epochs=args.epochs, lr=2e-3, ckpt=args.cache / "det_int8_train.ckpt",
        label="train fcos_slim")  # fmt: skip
    print(f"trained {args.epochs} epochs on {args.train_n} canvases ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    calibration = DataLoader(digits_detect("train", 128), batch_size=16, collate_fn=detection_collate)
    test = DataLoader(digits_detect("test", args.test_n), batch_size=32, collate_fn=detection_collate)
    task = get_task("detection", num_classes=11)
    models: dict[str, torch.nn.Module] = {"float (PyTorch eager)": model}
    for runtime in args.runtimes:
        for part in args.parts:
            floats = part.endswith(FLOAT_PREDICTORS)
            if floats and runtime == "torch":
                continue  # PT2E has no per-layer exclusion here
            t0 = time.perf_counter()
            folder = args.cache / {"backbone": runtime, "backbone+head": f"{runtime}-head"}.get(
                part, f"{runtime}-head-floatpred"
            )
            q = quantize_detector(
                model, calibration, folder, runtime=runtime, calibration_batches=8,
                part=part.removesuffix(FLOAT_PREDICTORS), float_predictors=floats,
            )  # fmt: skip
            models[f"int8 {part} on {runtime}"] = q
            print(f"quantized {part} on {runtime} ({time.perf_counter() - t0:.1f} s)", flush=True)
    from netsculpt.runtimes.output_tree import read_outputs
    from netsculpt.weights.quantize import OnnxModule

    if "backbone" not in args.parts:  # the control row's float graph comes from the backbone-only export
        quantize_detector(
            model, calibration, args.cache / "onnxruntime", calibration_batches=8, part="backbone"
        )
    fp32 = OnnxModule(
        args.cache / "onnxruntime" / "model.fp32.onnx", read_outputs(args.cache / "onnxruntime")
    )
    size = next(iter(models.values())).transform([torch.zeros(1, 128, 128)])[0].tensors.shape[1:]
    models["float backbone on onnxruntime"] = assemble(model, fp32, tuple(size))
    assert all(isinstance(m.backbone, Int8Backbone) for k, m in models.items() if "backbone" in k)

    x = torch.stack(next(iter(test))[0][:16])  # 128 px canvases: the transform gives them as they are
    scores = {}
    for name, m in models.items():
        t0 = time.perf_counter()
        scores[name] = task.evaluate(m, test)
        print(f"{name}: {scores[name]} ({time.perf_counter() - t0:.0f} s)", flush=True)
    errors = {
        name: _relative_error(model, m, x) for name, m in models.items() if name != "float (PyTorch eager)"
    }

    print_calibration("before timing")
    example = (torch.stack(next(iter(test))[0][:1]),)
    eager = get_runtime("torch")
    samples = time_alternating(
        {name: (lambda m=m: eager.prepare(m, example, 1)) for name, m in models.items()},
        threads=1, runs=args.runs, warmup=3, rounds=3, models=list(models.values()),
    )  # fmt: skip
    print_calibration("after timing")
    ms = {name: statistics.median([t for r in per for t in r]) for name, per in samples.items()}
    base = ms["float (PyTorch eager)"]
    print(f"\nfcos_slim, {args.epochs} epochs on {args.train_n} training canvases; mAP on {args.test_n} test "
          "canvases; whole detector at batch 1, one thread, median of 3 alternating rounds")  # fmt: skip
    header = f"{'model':54s} {'mAP':>6s} {'mAP@.5':>7s} {'feat err':>9s} {'head err':>9s}"
    print(f"{header} {'ms':>7s} {'speed-up':>8s}")
    for name in models:
        s, err = scores[name], errors.get(name)
        err_text = f"{err[0]:9.3f} {err[1]:9.3f}" if err is not None else f"{'-':>9s} {'-':>9s}"
        speed = f"{ms[name]:7.2f} {base / ms[name]:7.2f}x"
        print(f"{name:54s} {s['map']:6.3f} {s['map_50']:7.3f} {err_text} {speed}")
    print("feat err / head err: the worst pyramid level's / head output's ||int8 - float|| / ||float|| on 16 "
          "test canvases")  # fmt: skip
    _backbone_table(model, models, example, args.runs)


def _backbone_table(model: torch.nn.Module, models: dict, example: tuple, runs: int) -> None:
    """The backbone alone on its own runtime (what int8 changes), beside the float one on PyTorch eager:
    the rest of the whole-detector time (head, decoding, NMS) is the same float torch in every row."""
    from netsculpt.runtimes.artefacts import timing_runtime

    x = model.transform([example[0][0]])[0].tensors
    parts = {
        "float backbone (PyTorch eager)": (model.backbone, "torch"),
        "float backbone+head (PyTorch eager)": (BackboneHead(model.backbone, model.head), "torch"),
    }
    for name, m in models.items():
        if name != "float (PyTorch eager)":
            parts[name] = (m.backbone.artefact, timing_runtime(m.backbone.artefact))
    calls = {
        name: (lambda m=m, rt=rt: get_runtime(rt).prepare(m, (x,), 1)) for name, (m, rt) in parts.items()
    }
    print_calibration("before backbone timing")
    samples = time_alternating(calls, threads=1, runs=runs, warmup=3, rounds=3, models=[model.backbone])
    print_calibration("after backbone timing")
    ms = {name: statistics.median([t for r in per for t in r]) for name, per in samples.items()}
    print(f"\nthe int8 graph alone at {tuple(x.shape)}, on its own runtime (PT2E: torch.compile), "
          "against the same part in PyTorch eager")  # fmt: skip
    for name, (_, rt) in parts.items():
        same = (
            "float backbone+head (PyTorch eager)"
            if "backbone+head" in name
            else "float backbone (PyTorch eager)"
        )
        print(f"{name:54s} {rt:12s} {ms[name]:7.2f} ms {ms[same] / ms[name]:6.2f}x")


if __name__ == "__main__":
    main()
