"""ultralytics' model families, built from their YAML, prune at 50% per group exactly.

YOLOv8n and YOLO11n detection, and the variants users bring (tests/coverage/_yolo_variants.py): v8 / 11
segmentation and pose, v8 OBB and classification, YOLOv5nu, YOLOv9t, YOLOv10n and RT-DETR-l, each
through trace, prune (ratio and MACs target), save / load, measure with ONNX export, and left as found.

ultralytics is AGPL-3.0: it is a test-only extra (requirements/lock.txt), and netsculpt's own code never
imports it. Its C2f / C3k2 blocks (``chunk`` / ``split`` of one conv's output) and the neck's concats
are followed by the engine as they are written: no module is replaced. The checks run in a subprocess
(tests/coverage/_yolo_worker.py) because importing ultralytics patches PIL and torch process-wide.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from tests.coverage._yolo_variants import VARIANTS

# find_spec, not importorskip: importing ultralytics here would patch PIL for the rest of the suite
if importlib.util.find_spec("ultralytics") is None:
    pytest.skip("ultralytics is a test-only extra (requirements/lock.txt)", allow_module_level=True)


@pytest.fixture(scope="module")
def results(request: pytest.FixtureRequest) -> dict:
    from tests.coverage.conftest import worker_output

    code, stdout, stderr = worker_output(request.config)  # started at collection (conftest.py)
    assert code == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11n.yaml"])
def test_yolo_prunes_exactly(results: dict, cfg: str) -> None:
    result = results[cfg]
    assert "failure" not in result, result.get("failure")
    assert result["err"] <= 1e-4 and result["macs_ratio"] <= 0.6


@pytest.mark.slow
def test_yolo_head_outputs_and_dfl_bins_are_pinned(results: dict) -> None:
    # the box branch ends in 4 x reg_max DFL bins, the class branch in nc channels: the model's contract
    assert results["pins"]["head_prunable"] == {f"{b}.{i}": 0 for b in ("cv2", "cv3") for i in range(3)}
    # C2f blocks (cv1's output chunked in two halves) stay prunable without rewriting the module
    assert results["pins"]["c2f"] == [16, 16]


@pytest.mark.slow
@pytest.mark.parametrize("cfg", VARIANTS)
def test_yolo_variants_prune_save_measure_and_are_left_as_found(results: dict, cfg: str) -> None:
    row = results["variants"][cfg]
    assert "failure" not in row, row.get("failure")
    assert row["err"] <= 1e-4 and row["groups"] > 0
    # RT-DETR's decoder (LayerNorm'd 256-wide queries, 300 of them at any input size) keeps its width
    assert row["macs_ratio"] <= (0.55 if cfg.startswith("rtdetr") else 0.4)
    assert abs(row["target_macs"] - 0.5) <= 0.01
    assert row["reloaded_err"] == 0.0 and row["onnx"] and row["left_as_found"]


@pytest.mark.slow
def test_the_yolo_engine_object_is_refused_without_starting_a_training_run(results: dict) -> None:
    """ns.trace(YOLO(cfg)) and ns.measure(YOLO(cfg)): its forward predicts with a fused copy of the network
    and its train() starts a training run; netsculpt names `.model` instead of returning an empty graph and
    calling train(), or counting and timing the predictor."""
    engine = results["engine"]
    assert len(engine["refusals"]) == 4  # trace and measure, fresh and after a predict
    assert all(r and "`.model` (DetectionModel" in r for r in engine["refusals"]), engine["refusals"]
    assert engine["written"] == []  # no runs/ or datasets/ in the working directory


def test_netsculpt_never_imports_ultralytics() -> None:
    """AGPL-3.0: the package's own code must not depend on it, only these tests."""
    import netsculpt

    importing = re.compile(r"^\s*(import|from)\s+ultralytics\b|import_module\(\s*['\"]ultralytics", re.M)
    root = Path(netsculpt.__file__).parent
    offenders = [p for p in root.rglob("*.py") if importing.search(p.read_text())]
    assert not offenders, offenders
