"""A run with a sparsify stage: weights.html (bits per tensor) and the report's line on CPU speed."""

from __future__ import annotations

import re

import pytest

from netsculpt.pipeline import parse_recipe, run_recipe

RECIPE = """
name: tiny
model: {name: lenet5}
data: {name: mnist5k, limit: 200}
baseline: {train: {preset: default, epochs: 1}}
stages:
  - prune: {criterion: l1, widths: {conv1: 4, conv2: 6}}
  - sparsify: {sparsity: 0.9, scope: layer, epochs: 1, skip: [conv1]}
outputs: {latency_runs: 2, report: true}
"""


@pytest.mark.slow
def test_sparse_run_has_a_weights_page_and_says_it_is_not_faster(tmp_path) -> None:
    run_recipe(parse_recipe(RECIPE), RECIPE, tmp_path)
    report = (tmp_path / "report.html").read_text()
    assert 'href="weights.html"' in report
    note = re.search(
        r"Sparse weights are not faster on CPU\. Stage 02_sparsify: PyTorch batch 1: ([^<]*)", report
    )
    assert note is not None and "before" in note.group(1) and "x the time" in note.group(1)
    assert "ONNX Runtime densifies sparse initializers" in report
    page = (tmp_path / "weights.html").read_text()
    row = re.search(r"<td class=\"name\">fc1\.weight</td>(.*?)</tr>", page)
    assert row is not None and "sparse, " in row.group(1) and "90.0%" in row.group(1)
    assert "02_sparsify/model/model.safetensors" in page
    from netsculpt.report import write_report

    shared = tmp_path / "shared"  # a report under another name: its pages are named after it
    shared.mkdir()
    write_report(tmp_path, out=shared / "b.html")
    assert 'href="b.weights.html"' in (shared / "b.html").read_text()
    assert 'href="b.html">back to the run report' in (shared / "b.weights.html").read_text()
    assert not (shared / "weights.html").exists() and (tmp_path / "weights.html").read_text() == page


def test_a_run_without_sparsity_says_nothing_about_it(tmp_path) -> None:
    from netsculpt.report.run import Run, Stage
    from netsculpt.report.weights_page import sparse_speed_note

    def stage(kind: str, ms: float) -> Stage:
        return Stage(kind, kind, 0.9, 1, 1, 1.0, {}, None, latency={"torch": {"1": ms}})

    run = Run.__new__(Run)
    run.stages = [stage("baseline", 1.0), stage("prune", 0.5)]
    assert sparse_speed_note(run) == ""
    run.stages.append(stage("sparsify", 0.51))
    text = sparse_speed_note(run)
    assert "PyTorch batch 1: 0.500 ms before, 0.510 ms after (1.02x the time)" in text


@pytest.mark.slow
def test_a_run_ending_in_int8_names_whose_weights_the_page_shows(tmp_path) -> None:
    from tests.runtimes._run import tiny_run

    run = tiny_run(tmp_path / "run")  # baseline, prune, quantize (an int8 ONNX file, no safetensors)
    page = (run / "weights.html").read_text()
    assert "01_prune&#x27;s weights file (the last PyTorch model; the run ends in int8)" in page or (
        "01_prune's weights file (the last PyTorch model; the run ends in int8)" in page
    )
    assert "the final model&#x27;s weights file" not in page and "the final model's weights file" not in page
