"""Where a torchvision detector's inference time goes: transform, backbone, head, anchors, decoding + NMS.

Each part is called on its own, on the inputs the detector itself hands it (recorded from one float
pass), in alternating rounds on the calling thread's CPU clock (one thread), so the shares compare
within the run on a shared machine. ``postprocess`` is FCOS / RetinaNet's ``postprocess_detections``
(per image, per level: score threshold, top-k, box decoding) plus batched NMS and the transform's
resize back; ``nms`` times ``batched_nms`` alone on the boxes that reached it.

    PYTHONPATH=src:benchmarks python benchmarks/detector_profile.py --cache /tmp/int8det-cache

``--cache`` reads the fcos_slim that ``benchmarks/int8_detector.py`` trained there (its checkpoint;
untrained without one: the head and anchors cost the same, but few boxes pass the score threshold, so
decoding and NMS are cheaper than in a trained model). ``--retinanet`` adds a RetinaNet on the same
backbone (untrained: its head's time is what it is; its postprocess is a lower bound).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from _dense_models import NUM_CLASSES, build_detector

from netsculpt.data.canvases import detection_collate, digits_detect


def _retinanet() -> torch.nn.Module:
    """torchvision's RetinaNet (its head: 4-conv towers, 9 anchors per position) on fcos_slim's backbone."""
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    backbone = build_detector().backbone
    sizes = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in (16, 32, 64, 128, 256))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    return RetinaNet(backbone, NUM_CLASSES, min_size=128, max_size=128, image_mean=[0.0], image_std=[1.0],
                     anchor_generator=anchors)  # fmt: skip


def parts(model: torch.nn.Module, images: list[torch.Tensor]) -> dict[str, object]:
    """One callable per stage of ``model``'s inference, each fed what the detector feeds it."""
    from torchvision.ops import boxes as box_ops

    with torch.no_grad():
        image_list, _ = model.transform(images)
        features = list(model.backbone(image_list.tensors).values())
        head = model.head(features)
        anchors = model.anchor_generator(image_list, features)
    sizes = [x.size(2) * x.size(3) for x in features]
    if hasattr(model, "center_sampling_radius"):  # FCOS: one location per position
        per_level = sizes
    else:  # RetinaNet: A anchors per position
        a = head["cls_logits"].size(1) // sum(sizes)
        per_level = [a * s for s in sizes]
    original = [tuple(i.shape[-2:]) for i in images]

    def post() -> object:
        split = {k: list(v.split(per_level, dim=1)) for k, v in head.items()}
        anchors_split = [list(a.split(per_level)) for a in anchors]
        det = model.postprocess_detections(split, anchors_split, image_list.image_sizes)
        return model.transform.postprocess(det, image_list.image_sizes, original)

    kept = post()
    boxes = torch.cat([d["boxes"] for d in kept]) if kept else torch.zeros(0, 4)
    print(f"  {type(model).__name__}: {sum(len(d['boxes']) for d in kept)} detections kept over "
          f"{len(images)} image(s); head outputs {[tuple(v.shape) for v in head.values()]}")  # fmt: skip
    scores, labels = torch.rand(len(boxes)), torch.zeros(len(boxes), dtype=torch.int64)
    return {
        "whole": lambda: model(images),
        "transform": lambda: model.transform(images),
        "backbone": lambda: model.backbone(image_list.tensors),
        "head": lambda: model.head(features),
        "anchors": lambda: model.anchor_generator(image_list, features),
        "postprocess": post,
        "nms (kept boxes)": lambda: box_ops.batched_nms(boxes, scores, labels, model.nms_thresh),
    }


def time_parts(calls: dict[str, object], runs: int, rounds: int = 3) -> dict[str, float]:
    """Median ms of each call on the thread clock, in alternating rounds."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    with torch.no_grad():
        for call in calls.values():
            for _ in range(3):
                call()
        for _ in range(rounds):
            for name, call in calls.items():
                for _ in range(max(1, runs // rounds)):
                    t0 = time.thread_time_ns()
                    call()
                    samples[name].append((time.thread_time_ns() - t0) / 1e6)
    return {name: statistics.median(s) for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--retinanet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_detector()
    ckpt = args.cache / "det_int8_train.ckpt" if args.cache else None
    trained = ckpt is not None and ckpt.exists()
    if trained:
        model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    models = {f"fcos_slim ({'trained' if trained else 'untrained'})": model.eval()}
    if args.retinanet:
        models["retinanet on fcos_slim's backbone (untrained)"] = _retinanet().eval()
    test = next(iter(torch.utils.data.DataLoader(digits_detect("test", 8), batch_size=8,
                                                 collate_fn=detection_collate)))[0]  # fmt: skip
    for name, m in models.items():
        print(f"\n{name}, batch 1, one thread, median of {args.runs} calls in 3 alternating rounds")
        calls = parts(m, test[:1])
        print_calibration("before")
        ms = time_parts(calls, args.runs)
        print_calibration("after")
        whole = ms["whole"]
        for part, t in ms.items():
            print(f"  {part:18s} {t:7.3f} ms  {100 * t / whole:5.1f} %")
        rest = whole - sum(t for p, t in ms.items() if p not in ("whole", "nms (kept boxes)"))
        print(f"  {'(rest: glue)':18s} {rest:7.3f} ms  {100 * rest / whole:5.1f} %")


if __name__ == "__main__":
    main()
