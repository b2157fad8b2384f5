"""Distributed training under torchrun: 2 gloo processes on 127.0.0.1 agree with one process.

One torchrun launch (bounded by a timeout) runs every scenario in ``_ddp_worker.py``; this file runs the
same cases in-process and compares. Float tolerance, not bitwise: the all-reduce sums the two ranks'
half-batch gradients in a different order than one process sums the whole batch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from netsculpt.train import train

from . import _ddp_cases as cases

SRC = Path(__file__).resolve().parents[2] / "src"
WORKER = Path(__file__).with_name("_ddp_worker.py")
LAUNCH_TIMEOUT_S = 240  # the run itself takes ~10 s; the bound only stops a hung rendezvous
# float32 sums over 4 vs 8 samples in a different order: differences of a few ulps, amplified a little
# by 6 momentum steps; 1e-5 relative is far above that and far below any real mismatch (a missing
# gradient average changes weights by ~1e-2).
RTOL, ATOL = 1e-5, 1e-6


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "GLOO_SOCKET_IFNAME": "lo",  # loopback only: nothing leaves this machine
        "OMP_NUM_THREADS": "1",
        "NETSCULPT_QUIET": "1",
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "--max_restarts=0",
        str(WORKER), str(out),
    ]  # fmt: skip
    # its own session, so a hung run is stopped together with the two workers torchrun started
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"torchrun did not finish within {LAUNCH_TIMEOUT_S} s")
    assert proc.returncode == 0, f"torchrun failed:\n{stdout[-3000:]}\n{stderr[-6000:]}"
    return out


def _close(model_or_modules: list[nn.Module], saved: dict[str, torch.Tensor]) -> None:
    expected = {}
    for i, module in enumerate(model_or_modules):
        expected.update({f"{i}.{k}": v for k, v in module.state_dict().items()})
    assert expected.keys() == saved.keys()
    for key, value in expected.items():
        torch.testing.assert_close(saved[key], value, rtol=RTOL, atol=ATOL, msg=f"{key} differs")


@pytest.mark.slow
def test_one_step_over_two_ranks_equals_one_step_on_the_whole_batch(launched: Path) -> None:
    model = cases.plain_model()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, *cases.one_batch_loaders(), cases.ONE_STEP)
    assert any(not torch.equal(v, initial[k]) for k, v in model.state_dict().items())  # it did step
    _close([model], load_file(str(launched / "one_step.safetensors")))


@pytest.mark.slow
def test_several_steps_with_momentum_match_when_batches_match(launched: Path) -> None:
    model = cases.plain_model()
    train(model, *cases.ordered_loaders(), cases.MULTI_STEP)
    _close([model], load_file(str(launched / "multi_step.safetensors")))


@pytest.mark.slow
def test_distillation_with_hint_adapters_matches_single_process(launched: Path) -> None:
    student, teacher = cases.kd_student(), cases.kd_teacher()
    loss = cases.kd_loss(student, teacher)
    train(student, *cases.ordered_loaders(), cases.MULTI_STEP, loss_fn=loss)
    _close([student, loss.learnable], load_file(str(launched / "kd.safetensors")))
    reports = [json.loads((launched / f"rank{r}.json").read_text()) for r in (0, 1)]
    for report in reports:
        assert report["teacher_training"] is False and not any(report["teacher_grads"])
        assert report["teacher_unchanged"]


@pytest.mark.slow
def test_only_rank_0_writes_checkpoints_and_resume_is_bitwise(launched: Path) -> None:
    rank0, rank1 = (json.loads((launched / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["world_size"] == rank1["world_size"] == 2
    # straight run: epochs 1-3; interrupted run: epoch 1; resumed run: epochs 2-3
    assert rank0["saves"] == [1, 2, 3, 1, 2, 3]
    assert rank1["saves"] == []
    for report in (rank0, rank1):
        assert report["resumed_from"] == 1 and report["history_epochs"] == [1, 2, 3]
        assert report["resume_bitwise_equal"], f"rank {report['rank']} resumed to different weights"
    ckpt = torch.load(launched / "resumed" / "checkpoint.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng_ranks"]) == 2
    assert not torch.equal(ckpt["rng_ranks"][0]["torch"], ckpt["rng_ranks"][1]["torch"])  # own streams
