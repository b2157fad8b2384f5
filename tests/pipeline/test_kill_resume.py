"""Real processes: a run killed with SIGKILL anywhere resumes to the uninterrupted result, and a second
run into a folder in use is refused with the first one's PID, leaving no stale lock when that one dies."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from benchmarks._kill_points import CATEGORIES, RECIPE, Runner, run_kill_points

from tests._disk import snapshot

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SIGKILL/SIGSTOP and /proc: Linux")


@pytest.mark.slow
def test_runs_killed_at_random_points_resume_to_the_same_results(tmp_path) -> None:
    # one kill per trial and one trial per category: a stage boundary, a file written but not renamed,
    # one just renamed, an epoch's checkpoint, a batch mid-epoch (benchmarks/robustness_kill.py does more)
    report = run_kill_points(len(CATEGORIES), seed=0, kills_per_trial=1, workdir=tmp_path)
    print(report)
    assert report["mismatches"] == [] and report["half_written"] == []
    assert report["killed"] == report["kill_points"] == len(CATEGORIES)  # every point was reached
    assert sorted(report["by_category"]) == sorted(CATEGORIES)
    assert report["identical"] == report["trials"] == len(CATEGORIES)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.slow
def test_a_second_run_into_a_busy_folder_is_refused_and_a_killed_run_leaves_no_lock(tmp_path) -> None:
    runner = Runner(tmp_path, RECIPE)
    run_dir = tmp_path / "run"
    trace = tmp_path / "first.trace"
    first = runner.start(run_dir, fault="stage:prune:start@1/stop", trace=trace)  # frozen, holding the lock
    try:
        deadline = time.monotonic() + 120
        while not (trace.is_file() and "stage:prune:start" in trace.read_text() and _state(first.pid) == "T"):
            assert time.monotonic() < deadline and first.is_alive(), "the first run never reached the prune"
            time.sleep(0.1)
        before = snapshot(run_dir)
        # a real second process, forked from the runner's preloaded server: a fresh interpreter importing
        # torch again (python -m netsculpt) cost several seconds and is not what is tested
        second = runner.start(run_dir)
        second.join(300)
        stderr = second.log.read_text()
        assert second.exitcode == 1, stderr
        assert f"in use by another netsculpt run (PID {first.pid}" in stderr
        assert "Traceback" not in stderr
        assert snapshot(run_dir) == before  # the refused run wrote nothing
    finally:  # a failed check left it stopped: pytest would wait for it at exit, until the timeout
        os.kill(first.pid, signal.SIGKILL)
        first.join(30)
    assert first.exitcode == -signal.SIGKILL
    assert runner.run(run_dir) == 0  # the kernel dropped the dead run's lock: no stale lock to clear
    results = json.loads((run_dir / "results.json").read_text())
    assert [p["stage"] for p in results["points"]] == ["baseline", "prune", "finetune"]
