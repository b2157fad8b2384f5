"""`netsculpt search --method amc` and `netsculpt cluster --bits auto`, run the way a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import netsculpt as ns
from netsculpt.cli import main
from netsculpt.weights import iter_palettes

SMALL = ["--data", "mnist5k", "--limit", "300", "--val-size", "100", "--eval-batch-size", "50"]


@pytest.mark.slow
def test_amc_search_cli_writes_policy_and_resumes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    torch.manual_seed(0)
    ns.save(ns.create_model("lenet5"), tmp_path / "base", extra={"input_shape": [1, 1, 28, 28]})
    argv = ["--quiet", "search", str(tmp_path / "base"), "--method", "amc", "--target-macs", "0.5",
            "--episodes", "4", "--warmup", "2", "--eval-batches", "1", "--full-batches", "2", *SMALL,
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    for name in ("plan.json", "episodes.json", "policy.json", "policy.safetensors", "amc_agent.safetensors"):
        assert (out / name).is_file(), name
    plan = json.loads((out / "plan.json").read_text())
    assert plan["meta"]["search"] == "amc" and plan["meta"]["predicted"]["macs"] <= 0.5
    assert main([*argv, "--resume"]) == 0  # a finished search resumes to the same plan
    assert json.loads((out / "plan.json").read_text())["keep"] == plan["keep"]


@pytest.mark.slow
def test_cluster_bits_auto_fits_the_budget(tmp_path: Path, capsys) -> None:
    out = tmp_path / "m"
    budget = 80_000  # LeNet-5's 430k weights at ~1.4 bits each (1 bit: 54 kB, 2 bits: 108 kB)
    argv = ["--quiet", "cluster", "lenet5", "--data", "mnist5k", "--limit", "300", "--val-size", "100",
            "--bits", "auto", "--budget-bytes", str(budget), "--method", "kmeans", "--episodes", "3",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert (out / "model.safetensors").stat().st_size <= budget
    bits = {p.bits for _, p in iter_palettes(ns.load(out))}
    assert bits and all(1 <= b <= 8 for b in bits)
    assert "bits per layer" in capsys.readouterr().out


def test_cluster_bits_auto_needs_a_budget(capsys) -> None:
    assert main(["cluster", "lenet5", "--bits", "auto", "--out", "x"]) != 0
    assert "--budget-bytes" in capsys.readouterr().err


@pytest.mark.slow
def test_n2n_search_cli_removes_blocks_and_saves_a_loadable_student(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    torch.manual_seed(0)
    base = ns.create_model("resnet20_cifar", num_classes=10, in_channels=1)
    ns.save(base, tmp_path / "base", extra={"input_shape": [1, 1, 28, 28]})
    argv = ["--quiet", "search", str(tmp_path / "base"), "--method", "n2n", "--target-macs", "0.5",
            "--remove-episodes", "2", "--shrink-episodes", "2", "--rollouts", "2", "--kd-steps", "1",
            "--eval-batches", "1", "--full-batches", "2", *SMALL, "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["meta"]["search"] == "n2n" and plan["meta"]["predicted"]["macs"] <= 0.5 * 1.02
    small = ns.load(out / "model")
    x = torch.randn(1, 1, 28, 28)
    removed = {b["name"] for b in plan["meta"]["remove_blocks"]}
    assert ns.measure(small, x, latency=False).macs < 0.52 * ns.measure(base, x, latency=False).macs
    assert small(x).shape == (1, 10) and all(
        type(small.get_submodule(b)).__name__ != "BasicBlock" for b in removed
    )
    assert main([*argv, "--resume"]) == 0  # a finished search resumes to the same plan
    assert json.loads((out / "plan.json").read_text())["keep"] == plan["keep"]
