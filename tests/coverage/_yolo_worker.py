"""Run the YOLO checks in a process of their own: importing ultralytics patches ``PIL.Image.open``,
``torch.save`` and ``cv2`` for the whole process, which must not leak into the rest of the test suite.

    python -m tests.coverage._yolo_worker   # prints one JSON object
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import torch


def _yolo(cfg: str) -> torch.nn.Module:
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    return DetectionModel(cfg, nc=3, verbose=False).eval()


def _head_pins(model: torch.nn.Module) -> dict[str, object]:
    from netsculpt.graph import trace

    graph = trace(model, torch.rand(1, 3, 64, 64))
    detect = len(model.model) - 1

    def producing(weight: str):
        return next(g for g in graph.groups if any(m.name == weight and m.dim == 0 for m in g.members))

    heads = {
        f"{branch}.{level}": producing(f"model.{detect}.{branch}.{level}.2.weight").n_prunable
        for branch in ("cv2", "cv3")
        for level in range(3)
    }
    c2f = producing("model.2.cv1.conv.weight")
    return {"head_prunable": heads, "c2f": [c2f.n_prunable, c2f.size]}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="netsculpt-yolo-") as settings:
        os.environ["YOLO_CONFIG_DIR"] = settings  # ultralytics writes its settings here, not in $HOME
        os.environ["YOLO_OFFLINE"] = "1"
        return _checks()


def _checks() -> int:
    torch.set_num_threads(1)
    from tests.coverage._yolo_variants import VARIANTS, check_engine_object, check_variant

    result: dict[str, object] = {"pins": _head_pins(_yolo("yolov8n.yaml"))}
    result["variants"] = {cfg: check_variant(cfg) for cfg in VARIANTS}
    for cfg in ("yolov8n.yaml", "yolo11n.yaml"):
        # the variant row's first step is this very check (same build, seed and input): not run twice
        row = result["variants"][cfg]
        result[cfg] = {k: row[k] for k in ("err", "macs_ratio") if k in row} or {"failure": row["failure"]}
    result["engine"] = check_engine_object("yolov8n.yaml")
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
