"""YOLOv8n and YOLO11n from ultralytics, built from their YAML, prune at 50% per group exactly.

ultralytics is AGPL-3.0: it is a test-only extra (requirements/lock.txt), and netsculpt's own code never
imports it. Its C2f / C3k2 blocks (``chunk`` / ``split`` of one conv's output) and the neck's concats
are followed by the engine as they are written: no module is replaced.
"""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

from netsculpt.graph import trace
from tests.coverage._dense import check_dense_model


def _yolo(cfg: str) -> torch.nn.Module:
    """Imported here, not at collection, so ultralytics' import-time settings touch only these tests."""
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="netsculpt-yolo-"))  # not in $HOME
    os.environ.setdefault("YOLO_OFFLINE", "1")
    tasks = pytest.importorskip("ultralytics.nn.tasks")
    torch.manual_seed(0)
    return tasks.DetectionModel(cfg, nc=3, verbose=False).eval()


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11n.yaml"])
def test_yolo_prunes_exactly(cfg: str) -> None:
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    result = check_dense_model(_yolo(cfg), (x,))
    assert result["macs_ratio"] <= 0.6


def test_yolo_head_outputs_and_dfl_bins_are_pinned() -> None:
    model = _yolo("yolov8n.yaml")
    graph = trace(model, torch.rand(1, 3, 64, 64))
    detect = len(model.model) - 1

    def producing(weight: str):
        return next(g for g in graph.groups if any(m.name == weight and m.dim == 0 for m in g.members))

    # the box branch ends in 4 x reg_max DFL bins, the class branch in nc channels: the model's contract
    for branch in ("cv2", "cv3"):
        for level in range(3):
            head = producing(f"model.{detect}.{branch}.{level}.2.weight")
            assert head.n_prunable == 0, head.reasons
    # C2f blocks (cv1 output chunked in two halves) stay prunable without rewriting the module
    c2f = producing("model.2.cv1.conv.weight")
    assert c2f.n_prunable == c2f.size == 16


def test_netsculpt_never_imports_ultralytics() -> None:
    """AGPL-3.0: the package's own code must not depend on it, only these tests."""
    from pathlib import Path

    import netsculpt

    root = Path(netsculpt.__file__).parent
    offenders = [p for p in root.rglob("*.py") if "ultralytics" in p.read_text()]
    assert not offenders, offenders
