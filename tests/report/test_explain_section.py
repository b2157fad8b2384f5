"""The run report's "Interpretation maps" section, from RUN_DIR/explain (netsculpt explain RUN_DIR)."""

from __future__ import annotations

import json

import pytest
import torch

import netsculpt as ns
from netsculpt.explain.chip_maps import Perturbation
from netsculpt.explain.figures import write_figures
from netsculpt.explain.job import Settings, explain
from netsculpt.report import write_report
from tests.report._html import PNG_MAGIC, external_references, images


def _explain_into(folder) -> dict:
    torch.manual_seed(0)
    model = ns.create_model("lenet5").eval()
    images, labels = torch.randn(2, 1, 28, 28), torch.tensor([0, 1])
    calib = (torch.randn(8, 1, 28, 28), torch.tensor([0, 1] * 4))
    kept = {"conv2": torch.arange(50) % 2 == 0}
    exp = explain(
        {"baseline": model, "compressed": model},
        images,
        labels,
        calib,
        Settings(layers=["conv2"], perturbation=Perturbation(masks=8)),
        kept=kept,
    )
    exp.numbers["notes"] = ["<b>not bold</b>"]
    exp.numbers["figures"] = write_figures(exp, folder)
    (folder / "explain.json").write_text(json.dumps(exp.numbers))
    return exp.numbers


def test_report_shows_the_maps_and_numbers_when_explained(make_run, recipe_results) -> None:
    run = make_run("lenet", recipe_results)
    plain = write_report(run).read_text(encoding="utf-8")
    assert "Interpretation maps" not in plain  # nothing explained yet: no empty section
    numbers = _explain_into(run / "explain")
    html = write_report(run).read_text(encoding="utf-8")
    assert 'id="explain"' in html and "Interpretation maps" in html
    assert len(images(html)) == len(images(plain)) + 4
    assert all(p.startswith(PNG_MAGIC) for p in images(html))
    assert external_references(html) == []
    assert "25/50" in html  # conv2: half its channels kept
    assert f"{numbers['similarity_mean']['gradcam:conv2']:.3g}" in html  # same model twice: 1
    assert "Deletion test" in html and "random" in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html and "<b>not bold</b>" not in html


def test_a_broken_explain_file_is_reported_not_fatal(make_run, recipe_results) -> None:
    run = make_run("lenet", recipe_results)
    (run / "explain").mkdir()
    (run / "explain" / "explain.json").write_text("{not json")
    html = write_report(run).read_text(encoding="utf-8")
    assert "explain.json unreadable" in html


@pytest.mark.slow
def test_explained_report_renders_every_map_in_a_browser(
    chromium, make_run, recipe_results, tmp_path
) -> None:
    from tests.report.test_browser import loaded_flags

    run = make_run("lenet", recipe_results)
    _explain_into(run / "explain")
    assert loaded_flags(chromium, write_report(run), tmp_path / "profile") == ["1"] * 8  # 4 report + 4 maps
