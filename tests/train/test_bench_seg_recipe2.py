"""benchmarks/_dense_recipe2.py: the second segmenter grid and its stage 2 are chosen on validation scores
only (mean of two draws, a tie keeps the incumbent), and the calibration size only renames the rows that
read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def recipe2(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import _dense_recipe2

    return _dense_recipe2


def _fake_rows(recipe2, monkeypatch, vals: dict, x12: float = 0.0):
    """run_row replaced by validation scores keyed by (cache suffix, seed); 12x passes add ``x12``."""
    calls = []

    def run_row(setup, base, method, lr, cache, *, test, passes, step, suffix, seed):
        calls.append((method, suffix, seed, test, setup.calib_batches))
        return {"val_after": {"miou": vals[(suffix, seed)] + (x12 if passes == 12 else 0.0)}}

    monkeypatch.setattr(recipe2, "run_row", run_row)
    monkeypatch.setattr(recipe2, "kd_step", lambda setup, base: "kd")
    return calls


def _setup():
    from _dense_prune import Setup

    return Setup("seg", "segmentation", "miou", *([None] * 10), ft_lrs=(), calib_batches=16)


@pytest.mark.parametrize(
    ("vals", "chosen"),
    [
        ({"": (0.27, 0.28), "_c64": (0.28, 0.28), "_kd": (0.26, 0.29)}, "calib64"),
        ({"": (0.27, 0.28), "_c64": (0.26, 0.28), "_kd": (0.28, 0.28)}, "kd"),
        ({"": (0.27, 0.28), "_c64": (0.28, 0.27), "_kd": (0.26, 0.28)}, "incumbent"),  # a tie
    ],
)
def test_choice_uses_validation_only(recipe2, monkeypatch, tmp_path, vals, chosen):
    calls = _fake_rows(recipe2, monkeypatch, {(k, s): v[s] for k, v in vals.items() for s in (0, 1)})
    summary = recipe2.choose_recipe2(_setup(), None, tmp_path)
    assert summary["chosen"] == chosen
    assert all(not test for *_, test, _ in calls), "no selection row may see the test canvases"
    assert {(m, s) for m, _, s, *_ in calls} == {("fisher", 0), ("fisher", 1)}
    assert {sfx: calib for _, sfx, _, _, calib in calls} == {"": 16, "_c64": 64, "_kd": 16}
    assert json.loads((tmp_path / "seg_recipe2.json").read_text())["chosen"] == chosen
    assert recipe2.choose_recipe2(_setup(), None, tmp_path) == summary  # cached: no second selection
    assert len(calls) == 8  # 3 grid points x 2 draws, then 12x x 2 draws (12x scores as "" here: a tie)
    assert summary["stage1_chosen"] == chosen


def test_stage2_takes_over_only_when_higher(recipe2, monkeypatch, tmp_path):
    vals = {(k, s): 0.27 for k in ("", "_c64", "_kd") for s in (0, 1)}
    _fake_rows(recipe2, monkeypatch, vals, x12=0.001)
    summary = recipe2.choose_recipe2(_setup(), None, tmp_path)
    assert (summary["stage1_chosen"], summary["chosen"]) == ("incumbent", "x12")
    assert set(summary["stage2_val"]) == {"incumbent", "x12"}
    assert recipe2.tag("seg", "fisher", recipe2.SPECS["x12"], 1) == "seg_fisher_lr0.008_x12_s1"


def test_calibration_renames_only_data_driven_rows(recipe2):
    calib = recipe2.GRID["calib64"]
    assert recipe2.tag("seg", "fisher", calib, 2) == "seg_fisher_lr0.008_x6_c64_s2"
    for method in ("l1", "none", "tp"):  # pruned without data: the incumbent's row, the same file
        assert recipe2.tag("seg", method, calib, 0) == recipe2.tag(
            "seg", method, recipe2.GRID["incumbent"], 0
        )
    assert recipe2.tag("seg", "none", recipe2.GRID["kd"], 1) == "seg_none_lr0.008_x6_kd_s1"


def test_rows_give_the_calibration_to_fisher_only(recipe2, monkeypatch, tmp_path):
    vals = {(k, s): 0.27 + (0.01 if k == "_c64" else 0.0) for k in ("", "_c64", "_kd") for s in (0, 1, 2)}
    calls = _fake_rows(recipe2, monkeypatch, vals | {("", 2): 0.2})
    recipe2.recipe2_rows(_setup(), None, tmp_path, ("fisher", "l1"), seed=2)
    assert calls[-2:] == [("fisher", "_c64", 2, True, 64), ("l1", "", 2, True, 16)]


def test_report_lists_the_grid_and_the_verdict(recipe2, tmp_path):
    (tmp_path / "seg_base.json").write_text(json.dumps({"metrics": {"miou": 0.30}, "epochs": 12, "lr": 8e-3}))
    summary = {"lr": 8e-3, "selected_on": "fisher", "draws": [0, 1], "grid": recipe2.SPECS,
               "val": {"incumbent": [0.27, 0.28], "calib64": [0.28, 0.29], "kd": [0.26, 0.27]},
               "stage2_val": {"calib64": [0.28, 0.29], "x12": [0.27, 0.28]}, "chosen": "calib64"}  # fmt: skip
    (tmp_path / "seg_recipe2.json").write_text(json.dumps(summary))
    for seed, value in enumerate((0.293, 0.289)):
        row = {"macs_ratio": 0.5, "test_after": {"miou": value}, "val_after": {"miou": 0.2}, "finetune_s": 1}
        path = tmp_path / f"{recipe2.tag('seg', 'fisher', recipe2.GRID['calib64'], seed)}.json"
        path.write_text(json.dumps(row))
    text = recipe2.recipe2_report("seg", tmp_path, "miou", "mIoU")
    assert "[stage 1] calib64" in text and "mean 0.2850" in text and "[stage 2] x12" in text
    assert "MET: better row (fisher) drops 0.90 points" in text  # mean 0.291 against 0.30
