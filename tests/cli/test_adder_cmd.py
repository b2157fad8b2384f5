"""`netsculpt adder`: a smoke run on a few digits (plain and PKKD), resume, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import netsculpt as ns
from netsculpt.adder import AdderConv2d
from netsculpt.cli import main

LIMIT = [
    "--data",
    "mnist5k",
    "--limit",
    "64",
    "--batch-size",
    "32",
    "--preset",
    "finetune",
]  # 2 batches an epoch


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_adder_pkkd_saves_a_loadable_adder_model_and_resumes(capsys, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["lenet5", *LIMIT, "--out", str(out), "--pkkd", "--teacher-init", "scratch"]
    code, stdout, err = run(capsys, "adder", *args, "--epochs", "1")
    assert code == 0, err
    assert "adds" in stdout and "saved to" in stdout
    saved = ns.load(out / "model")
    assert isinstance(saved.conv2[0], AdderConv2d) and not isinstance(saved.conv1, AdderConv2d)
    assert all("teacher" not in key and "adapters" not in key for key in saved.state_dict())
    extra = json.loads((out / "model" / "netsculpt.json").read_text())["extra"]
    assert extra["adder"]["pkkd"] is True and 0 <= extra["adder"]["teacher_accuracy"] <= 1
    code, _, err = run(capsys, "adder", *args, "--epochs", "2", "--resume")
    assert code == 0, err
    assert len(json.loads((out / "checkpoints" / "history.json").read_text())) == 2
    saved.eval()(torch.zeros(1, 1, 28, 28))


def test_adder_refuses_an_existing_run_and_a_bad_keep(capsys, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = run(capsys, "adder", "lenet5", *LIMIT, "--out", str(out), "--epochs", "1")
    assert code == 0, err
    code, _, err = run(capsys, "adder", "lenet5", *LIMIT, "--out", str(out), "--epochs", "1")
    assert code == 1 and "--resume" in err
    code, _, err = run(capsys, "adder", "lenet5", *LIMIT, "--out", str(tmp_path / "b"), "--keep", "nope")
    assert code == 1 and "nope" in err


def test_copy_filters_trains_and_refuses_a_reset_teacher(capsys, tmp_path: Path) -> None:
    args = ["lenet5", *LIMIT, "--epochs", "1", "--copy-filters"]
    code, _, err = run(capsys, "adder", *args, "--out", str(tmp_path / "a"), "--pkkd", "--alpha", "0")
    assert code == 0, err
    code, _, err = run(
        capsys, "adder", *args, "--out", str(tmp_path / "b"), "--pkkd", "--teacher-init", "scratch"
    )
    assert code == 1 and "--copy-filters" in err


def test_two_runs_with_one_seed_are_the_same_run(capsys, tmp_path: Path) -> None:
    """The zoo CNN was built before the seed was set: its init (the teacher's and --copy-filters' start)
    differed from run to run."""
    for name in ("a", "b"):
        code, _, err = run(capsys, "adder", "lenet5", *LIMIT, "--epochs", "1", "--copy-filters",
                           "--seed", "3", "--out", str(tmp_path / name))  # fmt: skip
        assert code == 0, err
    a, b = (ns.load(tmp_path / n / "model").state_dict() for n in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_data_the_model_cannot_take_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "adder", "lenet5", *LIMIT, "--resize", "32", "--epochs", "1",
                       "--out", str(tmp_path / "a"))  # fmt: skip
    assert code == 1 and "--resize" in err and "Traceback" not in err
