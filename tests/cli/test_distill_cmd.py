"""`netsculpt distill`: a smoke run on a few digits, resume, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import netsculpt as ns
from netsculpt.cli import main

LIMIT = ["--data", "mnist5k", "--limit", "64", "--batch-size", "32"]  # 2 batches per epoch: a smoke run


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _teacher_and_student(tmp_path: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    teacher = ns.create_model("lenet5", num_classes=10, in_channels=1)
    x = torch.randn(1, 1, 28, 28)
    student = ns.prune(teacher, x, ratio=0.5, round_to=1)
    ns.save(teacher, tmp_path / "teacher", extra={"input_shape": [1, 1, 28, 28]})
    ns.save(student, tmp_path / "student", extra={"input_shape": [1, 1, 28, 28]})
    return tmp_path / "teacher", tmp_path / "student"


@pytest.mark.slow
def test_distill_saves_a_loadable_student_and_resumes(capsys, tmp_path: Path) -> None:
    teacher, student = _teacher_and_student(tmp_path)
    out = tmp_path / "run"
    args = [
        str(student),
        "--teacher",
        str(teacher),
        *LIMIT,
        "--out",
        str(out),
        "--hint",
        "conv2",
        "--mixup",
        "0.4",
    ]
    code, stdout, err = run(capsys, "distill", *args, "--epochs", "1")
    assert code == 0, err
    assert "teacher" in stdout and "saved to" in stdout
    saved = ns.load(out / "model")
    assert saved.conv2.out_channels == ns.load(student).conv2.out_channels == 25  # still the pruned width
    assert all("adapter" not in key for key in saved.state_dict())
    extra = json.loads((out / "model" / "netsculpt.json").read_text())["extra"]
    assert extra["distill"]["hints"] == [["conv2", "conv2"]] and extra["train"]["epochs"] == 1
    assert extra["distill"]["mixup"] == 0.4
    code, _, err = run(capsys, "distill", *args, "--epochs", "2", "--resume")
    assert code == 0, err
    history = json.loads((out / "checkpoints" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]  # epoch 1 came from the checkpoint


def test_distill_refuses_an_existing_run_and_mismatched_classes(capsys, tmp_path: Path) -> None:
    teacher, student = _teacher_and_student(tmp_path)
    out = tmp_path / "run"
    args = [str(student), "--teacher", str(teacher), *LIMIT, "--epochs", "1", "--out", str(out)]
    assert run(capsys, "distill", *args)[0] == 0
    code, _, err = run(capsys, "distill", *args)
    assert code == 1 and "already holds a distillation run; pass --resume" in err
    torch.manual_seed(0)
    five_classes = ns.create_model("lenet5", num_classes=5, in_channels=1)
    ns.save(five_classes, tmp_path / "five", extra={"input_shape": [1, 1, 28, 28]})
    other = [str(student), "--teacher", str(tmp_path / "five"), *LIMIT, "--out", str(tmp_path / "x")]
    code, _, err = run(capsys, "distill", *other)
    assert code == 1 and "same classes" in err
    bad_mixup = [
        str(student),
        "--teacher",
        str(teacher),
        *LIMIT,
        "--out",
        str(tmp_path / "y"),
        "--mixup",
        "-1",
    ]
    code, _, err = run(capsys, "distill", *bad_mixup)
    assert code == 1 and "mixup must be a number >= 0" in err


def test_distill_takes_bn_l1_as_train_does(capsys, tmp_path: Path) -> None:
    """`distill --bn-l1` reaches the checkpointed TrainConfig (the recipe's distill stage had bn_l1 and
    `train --bn-l1` existed; the distill command had no flag for it)."""
    from netsculpt.train import load_checkpoint

    resnet = ["--data", "mnist5k", "--limit", "16", "--batch-size", "16", "--resize", "16", "--channels", "3"]
    out = tmp_path / "kd"
    args = ["resnet20_cifar", "--teacher", "resnet20_cifar", *resnet, "--epochs", "1", "--bn-l1", "0.05"]
    code, _, err = run(capsys, "distill", *args, "--out", str(out))
    assert code == 0, err
    assert load_checkpoint(out / "checkpoints" / "checkpoint.pt")["config"]["bn_l1"] == 0.05
    code, _, err = run(capsys, "distill", *args[:-1], "-1", "--out", str(tmp_path / "bad"))
    assert code != 0 and "bn_l1" in err and "--bn-l1" in err and "Traceback" not in err
