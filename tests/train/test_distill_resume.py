"""Distillation runs resume bitwise (adapters included) and refuse a different teacher or recipe."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.train import load_checkpoint, train

from . import _kd_case, _tiny
from ._sigkill import kill_parked_worker


def _run(out_dir: Path | None = None, *, stop_after: int | None = None, resume: bool = False, init: int = 0):
    student, teacher = _kd_case.student(init), _kd_case.teacher()
    loss = _kd_case.loss(student, teacher)
    if resume:
        torch.manual_seed(4321)  # scramble the global stream: the checkpoint must restore it
    train_loader, test_loader = _tiny.loaders()
    result = train(
        student,
        train_loader,
        test_loader,
        _kd_case.CONFIG,
        out_dir=out_dir,
        resume=resume,
        loss_fn=loss,
        on_epoch_end=None if stop_after is None else (lambda record: record["epoch"] == stop_after),
    )
    return student, loss, result


def test_stopped_and_resumed_distillation_equals_uninterrupted(tmp_path: Path) -> None:
    reference, reference_loss, _ = _run()
    _run(tmp_path, stop_after=2)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2
    # a different initialisation and freshly seeded adapters: everything must come from the checkpoint
    resumed, resumed_loss, result = _run(tmp_path, resume=True, init=7)
    assert result.resumed_from == 2 and [h["epoch"] for h in result.history] == [1, 2, 3]
    _tiny.assert_same_weights(reference, resumed)
    _tiny.assert_same_weights(reference_loss.learnable, resumed_loss.learnable)


def test_resume_with_another_teacher_or_recipe_is_refused(tmp_path: Path) -> None:
    _run(tmp_path, stop_after=1)
    train_loader, test_loader = _tiny.loaders()
    student = _kd_case.student()
    other_teacher = _kd_case.loss(student, _kd_case.teacher(seed=12))
    with pytest.raises(ConfigError, match=r"different loss.*teacher"):
        train(
            student,
            train_loader,
            test_loader,
            _kd_case.CONFIG,
            out_dir=tmp_path,
            resume=True,
            loss_fn=other_teacher,
        )
    hotter = _kd_case.loss(student, _kd_case.teacher(), dataclasses.replace(_kd_case.KD, temperature=8.0))
    with pytest.raises(ConfigError, match=r"temperature: 3\.0 -> 8\.0"):
        train(
            student, train_loader, test_loader, _kd_case.CONFIG, out_dir=tmp_path, resume=True, loss_fn=hotter
        )
    with pytest.raises(ConfigError, match="different loss"):  # plain cross-entropy is a different loss too
        train(student, train_loader, test_loader, _kd_case.CONFIG, out_dir=tmp_path, resume=True)


@pytest.mark.slow
def test_distillation_resumes_bitwise_after_sigkill_mid_epoch(tmp_path: Path) -> None:
    marker = tmp_path / "parked"
    returncode = kill_parked_worker(tmp_path / "run", marker, "3", "kd")
    assert returncode == -signal.SIGKILL
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1
    resumed, resumed_loss, result = _run(tmp_path / "run", resume=True, init=5)
    reference, reference_loss, _ = _run()
    assert result.resumed_from == 1
    _tiny.assert_same_weights(reference, resumed)
    _tiny.assert_same_weights(reference_loss.learnable, resumed_loss.learnable)
