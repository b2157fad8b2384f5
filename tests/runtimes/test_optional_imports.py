"""netsculpt imports without the optional runtimes' packages (openvino, nncf, torchao)."""

from __future__ import annotations


def test_netsculpt_imports_without_the_optional_runtimes() -> None:
    import subprocess
    import sys

    # Its own file, so it runs before test_registry has compiled with inductor and loaded OpenVINO in
    # this process; close_fds=False lets subprocess use posix_spawn (no fork of a process full of
    # runtime threads: a fork there segfaulted once in a serial CI run).

    code = (
        "import sys, netsculpt, netsculpt.runtimes, netsculpt.cli.bench_cmd, netsculpt.weights.int8_select;"
        "print(sorted(m for m in ('openvino', 'nncf', 'torchao') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, close_fds=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-500:]
