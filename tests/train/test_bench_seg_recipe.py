"""benchmarks/_dense_recipe.py: the segmenter's fine-tune recipe is chosen on validation scores only
(loss, then length, then lr), and the report's verdict follows the mean drop of the better row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def recipe(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import _dense_recipe

    return _dense_recipe


def _fake_rows(recipe, monkeypatch, vals: dict, lr_gain: float = 0.0):
    """run_row replaced by a table of validation scores keyed by (passes, distilled); lr 8e-3 adds
    ``lr_gain`` on top (the lr stage), 4e-3 nothing."""
    calls = []

    def run_row(setup, base, method, lr, cache, *, test, passes, step, suffix, seed):
        calls.append((method, passes, suffix, test))
        return {"val_after": {"miou": vals[(passes, bool(suffix))] + (lr_gain if lr == 8e-3 else 0.0)}}

    monkeypatch.setattr(recipe, "run_row", run_row)
    monkeypatch.setattr(recipe, "kd_step", lambda setup, base, hints: "kd")
    return calls


def _setup():
    return type("S", (), {"kind": "seg", "metric": "miou"})()


@pytest.mark.parametrize(
    ("vals", "chosen"),
    [
        ({(6, False): 0.26, (6, True): 0.27, (12, True): 0.28}, {"passes": 12, "kd": True, "lr": 2e-3}),
        ({(6, False): 0.27, (6, True): 0.26, (12, False): 0.25}, {"passes": 6, "kd": False, "lr": 2e-3}),
        ({(6, False): 0.26, (6, True): 0.27, (12, True): 0.27}, {"passes": 6, "kd": True, "lr": 2e-3}),
    ],
)
def test_choice_uses_validation_only(recipe, monkeypatch, tmp_path, vals, chosen):
    calls = _fake_rows(recipe, monkeypatch, vals)
    summary = recipe.choose_recipe(_setup(), None, tmp_path)
    assert summary["chosen"] == chosen
    assert all(not test for *_, test in calls), "no selection row may see the test canvases"
    assert all(method == "fisher" for method, *_ in calls)
    assert json.loads((tmp_path / "seg_recipe.json").read_text())["chosen"] == chosen
    assert recipe.choose_recipe(_setup(), None, tmp_path) == summary  # cached: no second selection
    assert len(calls) == 5  # 2 loss trials, 1 length trial, 2 lr trials


def test_lr_stage_keeps_the_passes_and_loss_chosen_before(recipe, monkeypatch, tmp_path):
    vals = {(6, False): 0.26, (6, True): 0.27, (12, True): 0.25}
    _fake_rows(recipe, monkeypatch, vals, lr_gain=0.01)
    summary = recipe.choose_recipe(_setup(), None, tmp_path)
    assert summary["chosen"] == {"passes": 6, "kd": True, "lr": 8e-3}
    assert [t["lr"] for t in summary["lr_trials"]] == [2e-3, 4e-3, 8e-3]


def test_report_verdict_from_mean_drop(recipe, tmp_path):
    (tmp_path / "seg_base.json").write_text(json.dumps({"metrics": {"miou": 0.30}, "epochs": 12, "lr": 8e-3}))
    spec = {"passes": 6, "kd": True}
    trials = [{"passes": 6, "kd": False, "val": 0.2}, {**spec, "val": 0.25}]
    summary = {"lr": 2e-3, "selected_on": "fisher", "hints": ["a"], "trials": trials, "chosen": spec}
    (tmp_path / "seg_recipe.json").write_text(json.dumps(summary))
    for seed, (fisher, l1) in enumerate(((0.295, 0.28), (0.289, 0.27))):
        for method, value in (("fisher", fisher), ("l1", l1)):
            row = {
                "macs_ratio": 0.5,
                "test_after": {"miou": value},
                "val_after": {"miou": 0.2},
                "finetune_s": 1,
            }
            (tmp_path / f"{recipe._tag('seg', method, spec, seed)}.json").write_text(json.dumps(row))
    text = recipe.recipe_report("seg", tmp_path, "miou", "mIoU")
    assert "fine-tune draw 1:" in text
    assert "MET: better row (fisher) drops 0.80 points" in text  # mean of 0.295 and 0.289 against 0.30
