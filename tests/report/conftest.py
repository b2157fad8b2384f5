"""Results files in both shapes netsculpt writes, built from real measurements of LeNet-5.

The compress-job shape mirrors ``pipeline/job.py`` (stages keyed by name, before/after); the recipe
shape mirrors ``pipeline/runner.py`` (stages as a list with settings and metrics, points, recipe).
Metrics come from ``measure`` on the real zoo model and a real 50 % prune, so the report is tested on
exactly what the measure stage emits; accuracies and latencies are set by hand (no training here).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.report._chromium import install_chromium


@pytest.fixture(scope="session")
def lenet_measured() -> dict[str, Any]:
    import netsculpt as ns

    model = ns.create_model("lenet5")
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    plan, graph = ns.plan_pruning(model, x, criterion="l1", ratio=0.5, round_to=1)
    small = ns.apply_plan(model, plan, x, graph=graph)
    before = ns.measure(model, x, latency=False).to_dict()
    after = ns.measure(small, x, latency=False).to_dict()
    before.update(accuracy=0.985, latency_ms=0.94)
    after.update(accuracy=0.98, latency_ms=0.29)
    return {"before": before, "after": after, "plan": plan.to_dict()}


@pytest.fixture
def compress_results(lenet_measured: dict[str, Any]) -> dict[str, Any]:
    """What ``netsculpt compress`` wrote before recipes: stages keyed by name, no points, no recipe."""
    m = copy.deepcopy(lenet_measured)
    return {
        "version": 1,
        "job": {"model": "lenet5", "data": "mnist5k", "criterion": "l1", "ratio": 0.5, "options": {}},
        "before": m["before"],
        "after": m["after"],
        "stages": {
            "baseline": {"accuracy": 0.985, "history": [{"epoch": 1, "test_acc": 0.985}]},
            "prune": {"accuracy_before_finetune": 0.91, "plan": m["plan"]},
            "finetune": {"accuracy": 0.98, "history": []},
        },
        "calibration": {"matmul_gflops": 78.3, "python_loop_ms": 25.8},
        "wall_seconds": 78.9,
    }


RECIPE_TEXT = """# a recipe with characters HTML must escape: <b>bold?</b> & "quotes"
version: 1
name: lenet5_demo
stages:
  - prune: {criterion: l1, ratio: 0.5}
  - finetune: {epochs: 1}
"""


@pytest.fixture
def recipe_results(lenet_measured: dict[str, Any]) -> dict[str, Any]:
    """What a recipe run writes: a list of stage records with settings and metrics, points, the recipe."""
    m = copy.deepcopy(lenet_measured)
    pruned = {**m["after"], "accuracy": 0.91}
    records = [
        {"index": 0, "kind": "baseline", "dir": "00_baseline", "seconds": 60.0, "settings": {"train": None},
         "metrics": m["before"], "info": {"history": []}},
        {"index": 1, "kind": "prune", "dir": "01_prune", "seconds": 2.0,
         "settings": {"kind": "prune", "criterion": "l1", "ratio": 0.5, "target": None},
         "metrics": pruned, "info": {"plan": m["plan"]}},
        {"index": 2, "kind": "finetune", "dir": "02_finetune", "seconds": 9.0, "settings": {"epochs": 1},
         "metrics": m["after"], "info": {"history": []}},
    ]  # fmt: skip
    keys = ("accuracy", "params", "macs", "size_bytes", "latency_ms", "peak_activation_bytes")
    points = [
        {"name": r["dir"], "stage": r["kind"], **{k: r["metrics"].get(k) for k in keys}} for r in records
    ]
    return {
        "version": 1,
        "name": "lenet5_demo",
        "recipe": RECIPE_TEXT,
        "job": {"model": "lenet5", "data": "mnist5k"},
        "stages": records,
        "before": m["before"],
        "after": m["after"],
        "points": points,
        "pareto": [],
        "calibration": {"matmul_gflops": 78.3, "python_loop_ms": 25.8},
        "threads": 1,
        "wall_seconds": 71.0,
    }


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[[str, dict[str, Any]], Path]:
    """Write ``results`` as ``tmp_path/NAME/results.json`` and return the run directory."""

    def make(name: str, results: dict[str, Any]) -> Path:
        run = tmp_path / name
        run.mkdir(parents=True, exist_ok=True)
        (run / "results.json").write_text(json.dumps(results))
        return run

    return make


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium: found on PATH, else installed with apt-get (root); skipped only if that fails."""
    path, why = install_chromium()
    if path is None:
        pytest.skip(f"cannot run the browser test: {why}")
    return path
