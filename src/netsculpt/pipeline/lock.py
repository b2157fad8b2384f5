"""One run at a time per run folder: an advisory lock held for the whole run.

Two processes writing one run folder would interleave checkpoints, models and ``results.json`` into a
state neither run produced. The lock is a kernel lock on ``RUN_DIR/run.lock`` (``flock`` on POSIX,
``msvcrt.locking`` on Windows), so it dies with its process: a run killed with SIGKILL never leaves a
stale lock behind, and no PID-liveness guessing is needed. The file also names the holder (PID, host,
start time) so the refusal can say who has the folder. The file is never deleted: unlinking a lock
file that another process has already opened would let a third process lock a fresh file beside it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Any

from netsculpt.errors import RunLockedError

LOCK_FILE = "run.lock"

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


def _try_lock(handle: IO[str]) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _holder(path: Path, wait: float = 1.0) -> dict[str, Any]:
    """Who holds the lock: the holder writes its PID right after locking, so wait briefly for it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            found = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            found = {}
        if isinstance(found, dict) and isinstance(found.get("pid"), int):
            return found
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.05)


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir`` for this process or raises :class:`RunLockedError`."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open until release()
        if not _try_lock(handle):
            handle.close()
            who = _holder(self.path)
            pid = who.get("pid", "unknown")
            where = f" on {who['host']}" if who.get("host") and who["host"] != socket.gethostname() else ""
            since = f" since {who['started']}" if who.get("started") else ""
            raise RunLockedError(
                f"{self.path.parent} is in use by another netsculpt run (PID {pid}{where}{since}); wait for "
                "it to finish or stop it, then rerun this command to resume the folder; or choose another "
                "--out",
                pid=pid if isinstance(pid, int) else None,
            )
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the kernel lock
            self._handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
