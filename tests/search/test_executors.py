"""Executors change where candidates are scored, never the scores: local processes and Ray match serial."""

from __future__ import annotations

import os
import sys

import pytest

from netsculpt.search import (
    GreedyConfig,
    ProcessExecutor,
    RayExecutor,
    SerialExecutor,
    make_executor,
    search_widths,
)

CONFIG = GreedyConfig(step=0.25, eval_batches=1, full_batches=2)


def _search(tiny, executor):
    return search_widths(
        tiny.model, tiny.example, "greedy", "macs=0.5", tiny.train, tiny.val, CONFIG, executor=executor
    )


def test_make_executor_picks_by_settings() -> None:
    assert isinstance(make_executor(0), SerialExecutor)
    assert isinstance(make_executor(2), ProcessExecutor)
    assert isinstance(make_executor(0, "auto"), RayExecutor)


@pytest.mark.slow
def test_worker_processes_give_the_serial_result(tiny) -> None:
    serial = _search(tiny, SerialExecutor())
    parallel = _search(tiny, ProcessExecutor(workers=2))
    assert parallel.history["trajectory"] == serial.history["trajectory"]
    assert parallel.plan.keep == serial.plan.keep


@pytest.mark.slow
def test_ray_executor_on_a_local_instance(tiny) -> None:
    ray = pytest.importorskip("ray")
    # The test starts (and stops) its own local, dashboard-free instance; workers import netsculpt and the
    # test's model from the same paths as this process.
    path = os.pathsep.join(p for p in sys.path if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, "NETSCULPT_QUIET": "1"}},
    )
    try:
        serial = _search(tiny, SerialExecutor())
        executor = RayExecutor(workers=2)
        on_ray = _search(tiny, executor)
        assert executor.workers == 2
        assert on_ray.history["trajectory"] == serial.history["trajectory"]
        assert ray.is_initialized()  # an instance the caller started is left running for the caller
    finally:
        ray.shutdown()
