"""The per-runtime page of a run (netsculpt bench) opens in headless Chromium with every chart drawn."""

from __future__ import annotations

import pytest

from netsculpt.cli import main
from tests.report.test_browser import loaded_flags, screenshot
from tests.runtimes._run import tiny_run

pytestmark = [pytest.mark.slow, pytest.mark.runtimes]  # runtimes: own pytest process (Makefile)


def test_runtimes_page_renders_every_pareto_plot(chromium, tmp_path) -> None:
    run = tiny_run(tmp_path / "run")
    argv = [
        "--quiet",
        "bench",
        str(run),
        "--runtimes",
        "torch,onnxruntime,openvino",
        "--threads",
        "1",
        "--batch",
        "1,2",
        "--runs",
        "3",
    ]
    assert main(argv) == 0
    page = run / "runtimes.html"
    assert loaded_flags(chromium, page, tmp_path / "p1") == ["1"] * 3  # one Pareto plot per runtime
    pixels = screenshot(chromium, page, tmp_path / "p2", tmp_path / "runtimes.png")
    ink = (pixels < 0.9).any(axis=2).mean()
    assert 0.03 < ink < 0.6  # charts and the table cover part of the first screen; a blank page has none
    report = run / "report.html"  # the run report links to it and still renders all of its charts
    assert 'href="runtimes.html"' in report.read_text()
    assert "0" not in loaded_flags(chromium, report, tmp_path / "p3")


def test_default_job_runtimes_page_renders_every_runtime(chromium, tmp_path) -> None:
    """`make demo`'s recipe (HRel prune, distill, the random-criterion rerun), epochs cut for time, then
    `netsculpt bench` on all four runtimes: one Pareto plot per runtime, every stage's model on each
    (the random-criterion rerun is a comparison in the summary, not a model of the run)."""
    from netsculpt.pipeline import default_recipe_path, load_recipe, run_recipe

    overrides = [
        "baseline.train.epochs=1",
        "stages.1.distill.epochs=1",
        "data.limit=1000",
        "outputs.latency_runs=2",
    ]
    recipe, text = load_recipe(default_recipe_path(), overrides)
    assert recipe.compare_random  # the default job reruns its stages with a random criterion
    run = tmp_path / "demo"
    run_recipe(recipe, text, run)
    argv = ["--quiet", "bench", str(run), "--threads", "1", "--batch", "1,8", "--runs", "3"]
    assert main(argv) == 0  # default --runtimes: torch, compile, onnxruntime, openvino
    import json

    rows = json.loads((run / "bench.json").read_text())["rows"]
    assert {r["runtime"] for r in rows if r.get("latency_ms")} == {
        "torch",
        "compile",
        "onnxruntime",
        "openvino",
    }
    assert {r["model"] for r in rows} == {"00_baseline", "01_prune", "02_distill"}
    page = run / "runtimes.html"
    assert loaded_flags(chromium, page, tmp_path / "p1") == ["1"] * 4  # one Pareto plot per runtime
    pixels = screenshot(chromium, page, tmp_path / "p2", tmp_path / "runtimes.png")
    assert 0.03 < (pixels < 0.9).any(axis=2).mean() < 0.6
    assert 'href="runtimes.html"' in (run / "report.html").read_text()
