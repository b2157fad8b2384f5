"""Start the ultralytics worker (tests/coverage/_yolo_worker.py, about 80 s of one core) as soon as the
tests that read it are selected, so it runs beside the rest of the suite instead of holding it up when
tests/coverage/test_yolo.py is reached."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_WORKER = pytest.StashKey[tuple[subprocess.Popen, Path, Path]]()


@pytest.hookimpl(trylast=True)  # after -m / -k deselection: only start it for tests that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = any(
        item.path.name == "test_yolo.py" and "results" in getattr(item, "fixturenames", ()) for item in items
    )
    if not wanted or _WORKER in config.stash or importlib.util.find_spec("ultralytics") is None:
        return
    _start(config)


def _start(config: pytest.Config) -> None:
    out, err = (Path(tempfile.mkstemp(prefix="netsculpt-yolo-", suffix=end)[1]) for end in (".out", ".err"))
    with open(out, "w") as stdout, open(err, "w") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.coverage._yolo_worker"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    config.stash[_WORKER] = (worker, out, err)


def worker_output(config: pytest.Config, timeout: float = 600) -> tuple[int, str, str]:
    """The worker's exit code, stdout and stderr (started here now if collection did not start it)."""
    if _WORKER not in config.stash:
        _start(config)
    worker, out, err = config.stash[_WORKER]
    try:
        code = worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise
    return code, out.read_text(), err.read_text()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _WORKER in config.stash:
        worker, out, err = config.stash[_WORKER]
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        out.unlink(missing_ok=True)
        err.unlink(missing_ok=True)
