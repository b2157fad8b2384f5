"""Start ``_sigkill_worker.py``, wait until it parks mid-epoch 2, and SIGKILL it there.

Shared by the plain and the distillation resume tests, which differ only in the worker's arguments."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
WORKER = Path(__file__).with_name("_sigkill_worker.py")


def kill_parked_worker(run_dir: Path, marker: Path, *worker_args: str, timeout_s: float = 120) -> int:
    """Run the worker on ``run_dir`` until it writes ``marker``, kill it with SIGKILL; its return code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(run_dir), str(marker), *worker_args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "worker died"
            assert time.monotonic() < deadline, "worker never reached epoch 2"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    return proc.returncode
