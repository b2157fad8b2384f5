"""A real headless Chromium for the report tests: found on PATH, or installed from Debian's packages.

The install needs root and ``apt-get update`` first; it is serialised with a file lock so parallel
pytest workers do not fight over dpkg's lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser")
LOCK = Path(tempfile.gettempdir()) / "netsculpt-chromium-install.lock"


def find_chromium() -> str | None:
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def install_chromium() -> tuple[str | None, str]:
    """Return (path, "") on success, or (None, why not) when it cannot be installed here."""
    found = find_chromium()
    if found:
        return found, ""
    if shutil.which("apt-get") is None:
        return None, "chromium is not on PATH and this system has no apt-get to install it"
    if os.geteuid() != 0:
        return None, "chromium is not on PATH and installing it with apt-get needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing right now
        found = find_chromium()
        if found:
            return found, ""
        for cmd in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        ):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                return None, f"`{' '.join(cmd)}` failed (exit {done.returncode}): {' | '.join(tail)}"
    found = find_chromium()
    return (found, "") if found else (None, "apt-get installed chromium but it is not on PATH")


def headless(binary: str, profile: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run Chromium headless with no network services, no sandbox (root in CI), a throwaway profile."""
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


if __name__ == "__main__":  # `python tests/report/_chromium.py` installs it ahead of a test run
    path, why = install_chromium()
    print(path or why)
