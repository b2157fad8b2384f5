"""`netsculpt cluster` and `netsculpt quantize` on tiny limits, run the way a user types them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import netsculpt as ns
from netsculpt.cli import main
from netsculpt.weights import iter_palettes

SRC = Path(__file__).resolve().parents[2] / "src"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
@pytest.mark.parametrize("method", ["kmeans", "dkm"])
def test_cluster_saves_a_packed_model(capsys, tmp_path, method: str) -> None:
    out_dir = tmp_path / method
    code, out, err = run(
        capsys,
        "cluster",
        "lenet5",
        "--data",
        "mnist5k",
        "--limit",
        "200",
        "--bits",
        "2",
        "--method",
        method,
        "--epochs",
        "1",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    assert "2-bit" in out and "accuracy" in out
    model = ns.load(out_dir)
    palettes = dict(iter_palettes(model))
    assert set(palettes) == {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"}
    assert all(torch.unique(model.get_parameter(k)).numel() <= 4 for k in palettes)
    # 430,500 weights at 2 bits ~ 108 KB, against 1.7 MB in float32
    assert (out_dir / "model.safetensors").stat().st_size < 1_724_920 / 14


def _cluster_process(model: Path, out_dir: Path, *extra: str, fault: str = "") -> subprocess.CompletedProcess:
    """`netsculpt cluster --method dkm` in its own process, so a fault point can SIGKILL it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    env.pop("NETSCULPT_FAULT", None)
    if fault:
        env["NETSCULPT_FAULT"] = fault
    argv = ["--quiet", "--threads", "1", "cluster", str(model), "--method", "dkm", "--bits", "2"]
    argv += ["--epochs", "2", "--data", "mnist5k", "--limit", "200", "--out", str(out_dir), *extra]
    return subprocess.run(
        [sys.executable, "-m", "netsculpt", *argv], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="fault points SIGKILL: POSIX")
def test_a_killed_dkm_cluster_run_resumes_to_the_uninterrupted_weights(tmp_path) -> None:
    """DKM fine-tuning used to write no checkpoints and ignore --resume: a kill lost every epoch."""
    torch.manual_seed(0)
    model = ns.save(ns.create_model("lenet5", num_classes=10), tmp_path / "float")  # both runs start here
    whole = _cluster_process(model, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    killed = _cluster_process(model, tmp_path / "killed", fault="train:epoch@1")  # after epoch 1's checkpoint
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (tmp_path / "killed" / "checkpoints" / "checkpoint.pt").is_file()
    again = _cluster_process(model, tmp_path / "killed")
    assert again.returncode != 0 and "--resume" in again.stderr and "Traceback" not in again.stderr
    resumed = _cluster_process(model, tmp_path / "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in ("whole", "killed")]
    assert weights[0] == weights[1]


@pytest.mark.slow
def test_quantize_writes_int8_onnx(capsys, tmp_path) -> None:
    code, out, err = run(
        capsys,
        "quantize",
        "lenet5",
        "--data",
        "mnist5k",
        "--limit",
        "200",
        "--calibration-batches",
        "2",
        "--out",
        str(tmp_path),
    )
    assert code == 0, err
    assert (tmp_path / "model.int8.onnx").is_file() and (tmp_path / "model.fp32.onnx").is_file()
    assert "int8" in out and "latency" in out


def test_bad_bits_is_a_one_line_error(capsys, tmp_path) -> None:
    code, _, err = run(
        capsys,
        "cluster",
        "lenet5",
        "--method",
        "kmeans",
        "--bits",
        "9",
        "--limit",
        "50",
        "--out",
        str(tmp_path),
    )
    assert code == 1 and "1..8" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["quantize", "cluster"])
def test_a_segmenter_or_mismatched_data_is_refused_up_front(capsys, tmp_path, command: str) -> None:
    """Both crashed deep inside: CrossEntropy on an OrderedDict, ONNX Runtime on a 32 px batch for 64."""
    data = ["--data", "synthetic", "--limit", "16", "--batch-size", "8", "--out", str(tmp_path / "o")]
    code, _, err = run(capsys, command, "lraspp_gray", "--num-classes", "3", "--input-shape", "1,1,64,64",
                       "--resize", "64", "--channels", "1", *data)  # fmt: skip
    assert code != 0 and "works on classifiers" in err and "(1, 3, 64, 64)" in err
    code, _, err = run(
        capsys, command, "lenet5", "--input-shape", "1,1,28,28", "--resize", "32", "--channels", "1", *data
    )
    assert code != 0 and "match them with --resize" in err
    code, _, err = run(capsys, command, "lenet5", "--input-shape", "1,1,32,32", "--resize", "32", *data)
    assert code != 0 and "cannot run an input of shape (1, 1, 32, 32)" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_quantize_mixed_on_a_small_split_holds_out_a_share_of_it(capsys, tmp_path: Path) -> None:
    # --val-size was a fixed 500: any --limit of 500 or less failed "the held-out split must have between
    # 1 and 299 samples, got 500" (prune --depth-blocks, triage and now search hold out a fifth of it)
    argv = ["quantize", "lenet5", "--mixed", "--budget-ms", "100", "--episodes", "2"]
    argv += ["--data", "mnist5k", "--limit", "300", "--out", str(tmp_path / "o")]
    assert main(["--quiet", *argv]) == 0, capsys.readouterr().err
