"""`netsculpt grow`: the grown model is saved, reloads, and computes what the original computed."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import netsculpt as ns
from netsculpt.cli import main


def grow_saved_lenet(capsys, tmp_path: Path, options: list[str]) -> tuple[str, nn.Module]:
    """Save a LeNet-5, grow it with ``options`` through the CLI; return the summary and the reloaded
    model, after checking it computes what the original computed (≤ 1e-6)."""
    torch.manual_seed(0)
    original = ns.create_model("lenet5").eval()
    ns.save(original, tmp_path / "m", extra={"input_shape": [1, 1, 28, 28]})
    code = main(["--quiet", "grow", str(tmp_path / "m"), *options, "--out", str(tmp_path / "g")])
    out, err = capsys.readouterr()
    assert code == 0, err
    grown = ns.load(tmp_path / "g").eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert float((grown(x) - original(x)).abs().max()) <= 1e-6
    return out, grown


def test_grow_command_saves_a_model_with_the_same_outputs(capsys, tmp_path) -> None:
    out, grown = grow_saved_lenet(capsys, tmp_path, ["--layer", "conv1=3", "--layer", "conv2=5"])
    assert "conv1 +3, conv2 +5" in out and "same outputs" in out
    assert (grown.conv1.out_channels, grown.conv2.out_channels) == (23, 55)


def test_grow_command_errors_are_one_line(capsys, tmp_path) -> None:
    code = main(["--quiet", "grow", "lenet5", "--layer", "relu1=3", "--out", str(tmp_path / "g")])
    _, err = capsys.readouterr()
    assert code == 1 and "growable layers" in err


def test_grow_command_adds_a_branch(capsys, tmp_path) -> None:
    out, grown = grow_saved_lenet(capsys, tmp_path, ["--branch", "conv2=1x1:4", "--layer", "conv1=2"])
    assert "conv1 +2, conv2 +branch 1x1:4" in out
    assert grown.conv2.branches[0].out_channels == 4 and grown.conv2.main.in_channels == 22
    code = main(["--quiet", "grow", "lenet5", "--branch", "fc1=1x1:4", "--out", str(tmp_path / "h")])
    _, err = capsys.readouterr()
    assert code == 1 and "not an nn.Conv2d" in err
