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
