"""`netsculpt sparsify`: a small run per method leaves a loadable model at its sparsity; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import netsculpt as ns
from netsculpt.cli import main

LIMIT = ["--data", "mnist5k", "--limit", "64", "--batch-size", "32"]  # 2 batches an epoch


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _zero_fraction(model: torch.nn.Module, skip: tuple[str, ...]) -> float:
    """Zeros over every conv / linear weight but the skipped layers (the default global threshold
    splits the fraction unequally between layers; the overall fraction is exact)."""
    layer_types = (torch.nn.Conv2d, torch.nn.Linear)
    weights = [m.weight for n, m in model.named_modules() if isinstance(m, layer_types) and n not in skip]
    return sum(float((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--method", "magnitude", "--sparsity", "0.8", "--coding", "context"], 0.8),
        (["--pattern", "2:4", "--skip", "conv1", "--epochs", "2"], 0.5),
        (["--method", "gap", "--partitions", "2", "--epochs", "3", "--sparsity", "0.7"], 0.7),
    ],
)
def test_sparsify_saves_a_sparse_loadable_model(capsys, tmp_path: Path, extra, expected) -> None:
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "sparsify", "lenet5", *LIMIT, "--epochs", "1", *extra, "--out", str(out))
    assert code == 0, err
    assert "saved to" in stdout
    model = ns.load(out / "model")
    skip = ("conv1",) if "--skip" in extra else ()
    assert abs(_zero_fraction(model, skip) - expected) < 0.01  # exact up to rounding per layer
    assert not any("mask" in key or "orig" in key for key in model.state_dict())


def test_one_lr_schedule_gives_each_gap_phase_its_slice(capsys, tmp_path: Path) -> None:
    from netsculpt.train.checkpoint import load_checkpoint

    out = tmp_path / "run"
    argv = ["--method", "gap", "--partitions", "2", "--epochs", "3", "--one-lr-schedule", "--out", str(out)]
    code, _, err = run(capsys, "sparsify", "lenet5", *LIMIT, *argv)
    assert code == 0, err
    saved = [load_checkpoint(out / "phases" / f"phase-{i:02d}" / "checkpoint.pt")["config"] for i in range(3)]
    assert [(c["schedule_offset"], c["schedule_epochs"]) for c in saved] == [(0, 3), (1, 3), (2, 3)]


def test_sparsify_refuses_an_existing_run_and_a_bad_pattern(capsys, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run(capsys, "sparsify", "lenet5", *LIMIT, "--epochs", "1", "--out", str(out))[0] == 0
    code, _, err = run(capsys, "sparsify", "lenet5", *LIMIT, "--epochs", "1", "--out", str(out))
    assert code != 0 and "--resume" in err
    code, _, err = run(capsys, "sparsify", "lenet5", *LIMIT, "--pattern", "3:2", "--out", str(tmp_path / "b"))
    assert code != 0 and "Traceback" not in err
    code, _, err = run(capsys, "sparsify", "lenet5", *LIMIT, "--skip", "conv9", "--out", str(tmp_path / "c"))
    assert code != 0 and "conv9" in err
