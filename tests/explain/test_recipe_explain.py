"""A recipe with ``outputs: {explain: true}`` explains its baseline and final model before the report."""

from __future__ import annotations

import json

import netsculpt.explain.runner as explain_runner
from netsculpt.explain.chip_maps import Perturbation
from netsculpt.pipeline import parse_recipe, run_recipe

SMALL = """
name: tiny
model: {name: lenet5}
data: {name: mnist5k, limit: 200}
baseline: {train: {preset: default, epochs: 1}}
stages:
  - prune: {criterion: l1, widths: {conv1: 4, conv2: 6}}
outputs: {latency_runs: 2, report: true, explain: true}
"""


def test_recipe_output_explain_writes_maps_and_the_report_section(tmp_path, monkeypatch) -> None:
    real = explain_runner.explain_run
    calls = []

    def small(run_dir, **kwargs):  # the real thing, with fewer masks and images to keep the test short
        calls.append(run_dir)
        return real(run_dir, images=2, calib_images=40, perturbation=Perturbation(masks=8), **kwargs)

    monkeypatch.setattr(explain_runner, "explain_run", small)
    run_recipe(parse_recipe(SMALL), SMALL, tmp_path)
    assert calls == [tmp_path]
    data = json.loads((tmp_path / "explain" / "explain.json").read_text())
    assert list(data["models"]) == ["baseline", "compressed"]
    assert sum(data["kept"]["relu2"]) == 6 and sum(data["kept"]["relu1"]) == 4
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="explain"' in html and "4/20" in html and "6/50" in html


def test_explain_is_off_by_default() -> None:
    assert parse_recipe(SMALL.replace(", explain: true", "")).outputs.explain is False
