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
