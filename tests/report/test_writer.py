"""report.html for one run: self-contained, escaped, written atomically, tolerant of partial results."""

from __future__ import annotations

import os
import stat

import pytest

import netsculpt.fileio
import netsculpt.report.writer as writer
from netsculpt.report import write_report
from tests.report._html import PNG_MAGIC, external_references, images

# Three trade-off plots (accuracy vs MACs, latency, size) and one layer-width chart.
FULL_REPORT_IMAGES = 4


def test_report_is_self_contained(make_run, compress_results) -> None:
    run = make_run("lenet", compress_results)
    path = write_report(run)
    assert path == run / "report.html"
    html = path.read_text(encoding="utf-8")
    pngs = images(html)
    assert len(pngs) == FULL_REPORT_IMAGES and all(p.startswith(PNG_MAGIC) for p in pngs)
    assert external_references(html) == []
    assert "<style>" in html and 'setAttribute("data-loaded"' in html


def test_summary_shows_measured_numbers_and_ratios(make_run, compress_results) -> None:
    html = write_report(make_run("lenet", compress_results)).read_text(encoding="utf-8")
    before, after = compress_results["before"], compress_results["after"]
    assert f"{before['params']:,}" in html and f"{after['params']:,}" in html
    assert f"{before['params'] / after['params']:.2f}\u00d7 smaller" in html
    assert f"{before['macs'] / after['macs']:.2f}\u00d7 fewer" in html
    assert f"{(after['accuracy'] - before['accuracy']) * 100:+.2f} pp" in html
    assert "3 of 4 layers changed width" in html  # LeNet-5's 10-class output layer keeps its width
    assert "No recipe recorded" in html and "criterion" in html  # the job settings stand in for a recipe


def test_recipe_text_is_escaped(make_run, recipe_results) -> None:
    html = write_report(make_run("recipe", recipe_results)).read_text(encoding="utf-8")
    assert "<b>bold?</b>" not in html
    assert "&lt;b&gt;bold?&lt;/b&gt; &amp; &quot;quotes&quot;" in html
    assert "<pre># a recipe" in html
    assert "plan: 3 groups pruned" in html  # conv1, conv2 and fc1 lose channels; the output layer cannot


def test_write_goes_through_a_temporary_file_and_rename(make_run, compress_results, monkeypatch) -> None:
    run = make_run("lenet", compress_results)
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renames.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(netsculpt.fileio.os, "replace", recording_replace)
    path = write_report(run)
    assert len(renames) == 1
    src, dst = renames[0]
    assert (
        dst == str(path)
        and os.path.dirname(src) == str(run)
        and os.path.basename(src).startswith(".report.html.")
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by whoever the report is shared with


def test_failed_regeneration_keeps_the_previous_report(make_run, compress_results, monkeypatch) -> None:
    run = make_run("lenet", compress_results)
    old = write_report(run).read_text(encoding="utf-8")

    def broken(*_args):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(writer, "run_page", broken)
    with pytest.raises(RuntimeError, match="plotting failed"):
        write_report(run)
    assert (run / "report.html").read_text(encoding="utf-8") == old
    assert sorted(p.name for p in run.iterdir()) == ["report.html", "results.json"]  # no temp files left


def test_results_with_only_a_version(make_run) -> None:
    html = write_report(make_run("bare", {"version": 1})).read_text(encoding="utf-8")
    assert images(html) == []
    assert "No measured models in results.json" in html
    assert "accuracy vs MACs (batch 1): not recorded" in html
    assert "No per-layer widths or prune plans recorded." in html


def test_missing_optional_parts_drop_only_their_rows_and_charts(make_run) -> None:
    # before/after with accuracy, params and MACs only: no latency, size, layers, stages or calibration
    results = {
        "version": 1,
        "before": {"accuracy": 0.9, "params": 1000, "macs": 8000},
        "after": {"accuracy": 0.88, "params": 400, "macs": 2000},
    }
    html = write_report(make_run("partial", results)).read_text(encoding="utf-8")
    assert len(images(html)) == 1  # only accuracy vs MACs can be drawn
    assert "2.50\u00d7 smaller" in html and "4.00\u00d7 fewer" in html  # 1000/400 params, 8000/2000 MACs
    assert "latency (PyTorch" not in html and "size on disk</td>" not in html
    assert "accuracy vs latency, batch 1 (ms): not recorded" in html


def test_out_may_name_a_file_or_a_directory(make_run, compress_results, tmp_path) -> None:
    run = make_run("lenet", compress_results)
    assert write_report(run, out=tmp_path / "elsewhere.html") == tmp_path / "elsewhere.html"
    (tmp_path / "folder").mkdir()
    assert write_report(run, out=tmp_path / "folder") == tmp_path / "folder" / "report.html"
    assert not (run / "report.html").exists()


def test_a_detection_run_is_reported_in_map(make_run, recipe_results) -> None:
    """A dense task's headline metric replaces "accuracy" in the summary, tables and plot titles, and its
    other metrics (mAP@.5) get their own rows."""
    import copy

    from netsculpt.pipeline.summary import print_summary

    results = copy.deepcopy(recipe_results)
    results["task"] = {"name": "detection", "metric": "map", "label": "mAP@[.5:.95]",
                       "labels": {"map": "mAP@[.5:.95]", "map_50": "mAP@.5"}}  # fmt: skip
    results["before"]["task_metrics"] = {"map": results["before"]["accuracy"], "map_50": 0.91}
    results["after"]["task_metrics"] = {"map": results["after"]["accuracy"], "map_50": 0.89}
    html = write_report(make_run("det", results)).read_text(encoding="utf-8")
    assert "mAP@[.5:.95] against cost" in html and "mAP@[.5:.95] vs MACs" in html
    assert "mAP@.5<" in html
    assert "91.00 %" in html and "89.00 %" in html and "Accuracy against cost" not in html
    from rich.console import Console

    console = Console(record=True, width=120)
    print_summary(results, console)
    text = console.export_text()
    assert "mAP@[.5:.95]" in text and "mAP@.5" in text and "-2.00 pp" in text


def test_a_keypoint_detector_run_reports_keypoint_ap_rows(make_run, recipe_results) -> None:
    """Keypoint AP (kp_map, kp_map_50) gets rows beside box mAP in the report and the summary, labelled by
    the task record a detection run writes to results.json."""
    import copy

    from rich.console import Console

    from netsculpt.pipeline.dense import task_record
    from netsculpt.pipeline.summary import print_summary
    from netsculpt.tasks import get_task

    results = copy.deepcopy(recipe_results)
    results["task"] = task_record(get_task("detection"))
    results["before"]["task_metrics"] = {"map": 0.5, "map_50": 0.9, "kp_map": 0.62, "kp_map_50": 0.8}
    results["after"]["task_metrics"] = {"map": 0.5, "map_50": 0.9, "kp_map": 0.47, "kp_map_50": 0.7}
    html = write_report(make_run("pose", results)).read_text(encoding="utf-8")
    assert "keypoint AP@[.5:.95] (OKS)" in html and "62.00 %" in html and "47.00 %" in html
    console = Console(record=True, width=140)
    print_summary(results, console)
    text = console.export_text()
    assert "keypoint AP@[.5:.95] (OKS)" in text and "-15.00 pp" in text and "keypoint AP@.5 (OKS)" in text
