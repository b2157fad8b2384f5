"""Start ``_sigkill_worker.run``, wait until it parks mid-epoch 2, and SIGKILL it there.

Shared by the plain and the distillation resume tests, which differ only in the worker's arguments. The
worker is a real process forked from multiprocessing's fork server with torch and netsculpt imported
once (the server the pipeline's kill tests use too): a fresh interpreter spent most of each test
importing torch, and the kill is just as real."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

from benchmarks._kill_points import PRELOAD


def _run_logged(log: str, *args: str) -> None:
    """The worker's body, its output in ``log`` (a forked child must not write into pytest's capture)."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from tests.train._sigkill_worker import run

    run(list(args))


def kill_parked_worker(run_dir: Path, marker: Path, *worker_args: str, timeout_s: float = 120) -> int:
    """Run the worker on ``run_dir`` until it writes ``marker``, kill it with SIGKILL; its exit code."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # no effect once the server runs: the same list either way
    log = marker.with_name(marker.name + ".log")
    proc = ctx.Process(target=_run_logged, args=(str(log), str(run_dir), str(marker), *worker_args))
    proc.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not marker.exists():
            assert proc.is_alive(), log.read_text() if log.is_file() else "worker died"
            assert time.monotonic() < deadline, "worker never reached epoch 2"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.join()
    return proc.exitcode
