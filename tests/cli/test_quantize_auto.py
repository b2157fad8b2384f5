"""``netsculpt quantize --runtime auto``: the recipe stage's selection from the command line, its table and
the model it keeps. ONNX Runtime is the one candidate and the timings are injected (as the stage's own
tests do: tests/pipeline/test_quantize_stage.py), so which model is kept does not hang on a shared
machine's clock; quantizing, scoring and the files written are real."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.test_quantize_dense import DETECT, run
from tests.pipeline.test_quantize_stage import _inject_timings

FASTER_INT8 = {"float": 2.0, "float@onnxruntime": 1.0, "onnxruntime": 0.5}


def test_a_classifier_keeps_the_faster_int8_candidate_and_prints_the_table(
    capsys, monkeypatch, tmp_path: Path
) -> None:
    """quantize took --runtime onnxruntime only for classifiers (auto existed in recipes alone)."""
    from netsculpt.runtimes.artefacts import load_artefact

    _inject_timings(monkeypatch, FASTER_INT8)
    out = tmp_path / "auto"
    code, text, err = run(capsys, "quantize", "lenet5", "--data", "mnist5k", "--limit", "64", "--batch-size",
                          "16", "--calibration-batches", "2", "--runtime", "auto", "--tolerance-pp", "100",
                          "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert "runtime auto: held-out accuracy (float " in text and "keep the fastest within 100.0 pp" in text
    cells = " ".join(text.replace("│", " ").split())  # the table's row: score, int8 ms, float ms on, ...
    assert re.search(r"onnxruntime \d+\.\d\d% 0\.500 1\.000 onnxruntime 2\.00x [\d,]+ kept", cells), cells
    assert "kept int8 on onnxruntime (0.500 ms): 2.00x faster than the float model on onnxruntime" in text
    assert "int8 (onnxruntime): test accuracy " in text
    assert load_artefact(out).deployed_runtime == "onnxruntime"  # the kept candidate moved into --out


def test_a_detector_keeps_the_float_model_when_int8_is_slower_and_says_so(
    capsys, monkeypatch, tmp_path: Path
) -> None:
    from netsculpt.runtimes.artefacts import load_artefact

    # an int8 detector is timed whole on PyTorch eager, against the float one there (its float parts are
    # eager torch): 1.5x slower, as SLOWER_INT8's candidate is against the float model
    _inject_timings(monkeypatch, {"float": 1.0, "onnxruntime": 1.5})
    out = tmp_path / "auto"
    code, text, err = run(capsys, "quantize", "fcos_slim", "--model-option", "image_size=64", *DETECT,
                          "--runtime", "auto", "--tolerance-pp", "100", "--part", "backbone",
                          "--calibration-batches", "1",
                          "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert "runtime auto, backbone int8: held-out mAP@[.5:.95] (float " in text
    assert "kept the float model: no int8 candidate within tolerance is faster than it" in text
    assert "1.50x SLOWER than the float model on torch" in text
    assert f"no int8 model written to {out}; the candidates are in {out / 'candidates'}" in text
    assert load_artefact(out) is None  # nothing int8 promoted; the candidate stays for a look
    record = json.loads((out / "candidates" / "onnxruntime" / "int8_detector.json").read_text())
    assert record["part"] == "backbone"
