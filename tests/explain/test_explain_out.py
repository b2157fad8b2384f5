"""`netsculpt explain RUN --out OTHER` writes under OTHER only: it rewrote RUN/report.html (outside the
folder asked for, and without the new maps, which the report reads from RUN/explain only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsculpt.cli import main
from tests.runtimes._run import TINY, tiny_run

FAST = ["--images", "2", "--calib-images", "40", "--masks", "16", "--layers", "conv2"]
SENTINEL = "<html>the report as the run left it</html>"


def _state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time: a rewrite changes one of them."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    text = TINY.replace("  - quantize: {calib_batches: 2}\n", "")  # baseline + prune: a saved final model
    return tiny_run(tmp_path_factory.mktemp("run"), text)


def test_explain_with_out_elsewhere_leaves_the_run_folder_as_it_was(run_dir, tmp_path, capsys) -> None:
    (run_dir / "report.html").write_text(SENTINEL)
    before = _state(run_dir)
    other = tmp_path / "maps"
    assert main(["--quiet", "explain", str(run_dir), *FAST, "--out", str(other)]) == 0
    assert (other / "explain.json").is_file()
    assert _state(run_dir) == before  # no RUN/explain, no rewritten report.html
    assert (run_dir / "report.html").read_text() == SENTINEL
    assert "left as it was" in capsys.readouterr().err


def test_explain_into_the_run_folder_still_updates_its_report(run_dir, capsys) -> None:
    (run_dir / "report.html").write_text(SENTINEL)
    assert main(["--quiet", "explain", str(run_dir), *FAST]) == 0  # default --out RUN/explain
    report = (run_dir / "report.html").read_text()
    assert report != SENTINEL and "Interpretation maps" in report
    assert (run_dir / "explain" / "explain.json").is_file()
