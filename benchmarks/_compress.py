"""Run ``netsculpt compress`` in a child process, as a user would from the shell."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def run_compress(out: Path, recipe: str | None = None, sets: Sequence[str] = ()) -> None:
    """``netsculpt --quiet compress [recipe] --set ... --out out`` with this checkout's ``src`` on the
    path; a child process so each run starts from a clean interpreter, like the CLI a user runs."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "netsculpt", "--quiet", "compress"]
    cmd += [recipe] if recipe else []
    for field in sets:
        cmd += ["--set", field]
    subprocess.run([*cmd, "--out", str(out)], check=True, env=env)
