"""Several runs on one page: each run its own colour and its own front."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.colors import to_hex

from netsculpt.errors import ConfigError
from netsculpt.report import load_run, write_comparison, write_report
from netsculpt.report.plots import Series, colour, tradeoff_figure
from netsculpt.report.writer import run_labels
from tests.report._html import PNG_MAGIC, external_references, images

COMPARISON_IMAGES = (
    3  # accuracy vs MACs, latency and size; layer widths differ per run and stay in each report
)


def test_comparison_report_lists_every_run(make_run, compress_results, recipe_results, tmp_path) -> None:
    a = make_run("job", compress_results)
    b = make_run("recipe", recipe_results)
    write_report(a)  # only `job` has its own report, so only it gets a link
    path = write_comparison([a, b], tmp_path / "cmp")
    html = path.read_text(encoding="utf-8")
    assert path == tmp_path / "cmp" / "report.html"
    pngs = images(html)
    assert len(pngs) == COMPARISON_IMAGES and all(p.startswith(PNG_MAGIC) for p in pngs)
    assert external_references(html) == []
    assert f"background:{colour(0)}" in html and f"background:{colour(1)}" in html
    assert '<a href="../job/report.html">job</a>' in html and ">recipe</a>" not in html
    assert (path.parent / "../job/report.html").resolve() == (a / "report.html").resolve()
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html  # the recipe run's YAML, escaped
    assert "Comparison of 2 runs" in html


def test_each_run_gets_its_own_front_in_its_own_colour(make_run, compress_results, recipe_results) -> None:
    runs = [load_run(make_run("job", compress_results)), load_run(make_run("recipe", recipe_results))]
    series = [Series(r.label, r.points, colour(i)) for i, r in enumerate(runs)]
    fig = tradeoff_figure(series, "macs", "MACs (batch 1)", "count")
    lines = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) > 1]
    assert sorted(to_hex(line.get_color()) for line in lines) == sorted([colour(0), colour(1)])
    # the pruned model is cheaper and each run's baseline more accurate: both points form every front
    assert all(len(line.get_xdata()) == 2 for line in lines)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:2] == ["job", "lenet5_demo"]


def test_run_labels_stay_distinct(tmp_path: Path) -> None:
    assert run_labels([tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "c"]) == [
        "a/run",
        "b/run",
        "c",
    ]
    assert run_labels([tmp_path / "x", tmp_path / "x"]) == ["x #1", "x #2"]


def test_comparison_needs_two_runs_and_a_directory(make_run, compress_results, tmp_path) -> None:
    a = make_run("job", compress_results)
    with pytest.raises(ConfigError, match="at least two run directories"):
        write_comparison([a], tmp_path / "cmp")
    with pytest.raises(ConfigError, match="--out is a directory"):
        write_comparison([a, a], tmp_path / "cmp.html")


def test_a_bad_run_is_named_in_the_error(make_run, compress_results, tmp_path) -> None:
    good = make_run("good", compress_results)
    bad = make_run("bad", {"version": 1, "points": [{"accuracy": 2.0}]})
    with pytest.raises(ConfigError, match=r"(?s)bad/results.json is not a valid.*points\[0\]\.name"):
        write_comparison([good, bad], tmp_path / "cmp")
