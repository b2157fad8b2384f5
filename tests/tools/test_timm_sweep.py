"""The timm family sweep (tools/timm_sweep.py): representatives, statuses, resumable output."""

from __future__ import annotations

import json

import pytest

timm = pytest.importorskip("timm")

from tools import timm_sweep  # noqa: E402


def test_one_representative_per_family() -> None:
    names = timm_sweep.family_representatives()
    assert len(names) == len(set(names)) > 100
    assert "resnet18" in names and "mobilenetv3_small_050" in names


@pytest.mark.slow
def test_statuses_and_resume(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(timm_sweep, "family_representatives", lambda: ["resnet18", "no_such_model"])
    out = tmp_path / "sweep.jsonl"
    assert timm_sweep.main(["--out", str(out)]) == 0
    records = {r["name"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert records["resnet18"]["status"] == "ok" and records["resnet18"]["err"] < 1e-4
    assert (
        records["no_such_model"]["status"] == "skip" and "no_such_model" in records["no_such_model"]["error"]
    )
    assert timm_sweep.main(["--out", str(out)]) == 0  # resumes: nothing is checked twice
    assert len(out.read_text().splitlines()) == 2


def test_ratios_above_the_bar_print_their_reason(capsys) -> None:
    records = [
        {"name": "cnn", "status": "ok", "err": 1e-7, "macs_ratio": 0.26},
        {
            "name": "vit",
            "status": "ok",
            "err": 1e-7,
            "macs_ratio": 0.8,
            "why": ["`blocks.0.fc1` (9% of MACs): LN"],
        },
        {
            "name": "nf",
            "status": "pinned",
            "macs_ratio": 1.0,
            "why": ["`stem` (5% of MACs): computed weight"],
        },
        {"name": "gone", "status": "skip", "error": "timm cannot build it"},
    ]
    timm_sweep.print_ratios(records)
    out = capsys.readouterr().out
    assert "cnn" in out and "0.26x" in out and "why" not in out.split("cnn")[1].split("\n")[0]
    assert "why: `blocks.0.fc1` (9% of MACs): LN" in out and "why: `stem` (5% of MACs)" in out
    assert "gone" not in out and "2 of 3 families above 0.7x" in out
