"""A recipe with ``outputs: {explain: true}`` (or a mapping of the ``netsculpt explain`` knobs) explains
its baseline and final model before the report."""

from __future__ import annotations

import json

import pytest

import netsculpt.explain.runner as explain_runner
from netsculpt.errors import ConfigError
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

    def recorded(run_dir, **kwargs):
        calls.append((run_dir, kwargs))
        return real(run_dir, **kwargs)

    monkeypatch.setattr(explain_runner, "explain_run", recorded)
    # the knobs of `netsculpt explain`, fewer masks and images than the defaults to keep the test short
    text = SMALL.replace(
        "explain: true", "explain: {images: 2, calib_images: 40, masks: 8, class: predicted}"
    )
    run_recipe(parse_recipe(text), text, tmp_path)
    assert [run_dir for run_dir, _ in calls] == [tmp_path]
    options = calls[0][1]
    assert (options["images"], options["calib_images"], options["target"]) == (2, 40, "predicted")
    assert options["perturbation"] == Perturbation(masks=8)
    data = json.loads((tmp_path / "explain" / "explain.json").read_text())
    assert list(data["models"]) == ["baseline", "compressed"] and data["perturbation"]["masks"] == 8
    assert data["target"] == "predicted" and len(data["images"]["labels"]) == 2
    assert sum(data["kept"]["relu2"]) == 6 and sum(data["kept"]["relu1"]) == 4
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="explain"' in html and "4/20" in html and "6/50" in html


def test_explain_is_off_by_default_and_true_means_the_cli_defaults() -> None:
    assert parse_recipe(SMALL.replace(", explain: true", "")).outputs.explain.enabled is False
    on = parse_recipe(SMALL).outputs.explain
    assert on.enabled and on.run_options()["perturbation"] == Perturbation()  # masks 256, as --masks
    assert (on.images, on.calib_images, on.target, on.layers) == (8, 320, "label", None)
    off = parse_recipe(SMALL.replace("explain: true", "explain: {enabled: false, masks: 8}")).outputs.explain
    assert not off.enabled and off.masks == 8


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "{maskss: 8}",
            "unknown key 'maskss' (did you mean 'masks'?); outputs.explain is true, false or a "
            "mapping of enabled, layers, images, class",
        ),
        ("{masks: 0}", "outputs.explain.masks: Input should be greater than or equal to 1"),
        ("{class: -1}", "class is 'label', 'predicted' or a class index >= 0"),
        ("3", "outputs.explain is true, false or a mapping"),
    ],
)
def test_bad_explain_settings_are_named_at_their_line(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_recipe(SMALL.replace("explain: true", f"explain: {value}"))
    assert message in str(err.value) and "<recipe>:" in str(err.value)


def test_too_few_calibration_images_names_the_recipe_field_in_a_recipe(monkeypatch, tmp_path) -> None:
    """The hint said ``(--calib-images)`` inside a recipe too, whose knob is outputs.explain.calib_images."""
    import torch

    from netsculpt.explain.chip_maps import learn_importance

    captured = {}
    monkeypatch.setattr(explain_runner, "from_run", lambda *args: type("Src", (), {"data": None})())
    monkeypatch.setattr(explain_runner, "recipe_loaders", lambda data: None)
    monkeypatch.setattr(
        explain_runner, "explain_source", lambda *a, settings, **k: captured.update(s=settings)
    )
    explain_runner.explain_run(tmp_path, **parse_recipe(SMALL).outputs.explain.run_options())
    option = captured["s"].calib_option
    images, labels = torch.zeros(4, 1, 28, 28), torch.tensor([0, 0, 1, 1])  # no image of class 3
    with pytest.raises(ConfigError, match=r"use more images \(outputs\.explain\.calib_images\)"):
        learn_importance(torch.nn.Identity(), images, labels, "conv1", [3], calib_option=option)
    with pytest.raises(ConfigError, match=r"use more images \(--calib-images\)"):  # the CLI's own flag
        learn_importance(torch.nn.Identity(), images, labels, "conv1", [3])
