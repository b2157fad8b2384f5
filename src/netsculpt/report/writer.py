"""Write reports: ``RUN_DIR/report.html`` for one run, ``OUT/report.html`` comparing several.

The page is rendered completely in memory and then written atomically (temporary file + rename), so a
failed or interrupted regeneration leaves the previous report in place rather than half a page.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from netsculpt.errors import ConfigError
from netsculpt.fileio import atomic_write
from netsculpt.report.comparison import comparison_page
from netsculpt.report.pages import run_page
from netsculpt.report.run import load_run

REPORT_NAME = "report.html"

PathLike = str | os.PathLike[str]


def _write_html(path: Path, text: str) -> Path:
    written = atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    written.chmod(0o644)  # the temporary file was private (mkstemp); a report is for sharing
    return written


def write_report(run_dir: PathLike, out: PathLike | None = None) -> Path:
    """Render ``RUN_DIR/results.json`` into ``RUN_DIR/report.html`` (or ``out``); returns the path."""
    run = load_run(run_dir)
    target = Path(out) if out is not None else run.path / REPORT_NAME
    if target.is_dir():
        target = target / REPORT_NAME
    from netsculpt.report.runtimes import PAGE_NAME, read_bench, runtimes_page
    from netsculpt.report.weights_page import PAGE_NAME as WEIGHTS_NAME

    # report.html's pages are weights.html / runtimes.html; any other name's are NAME.weights.html ...,
    # so two reports written into one folder do not overwrite each other's pages
    prefix = "" if target.name == REPORT_NAME else f"{target.stem}."
    runtimes_name, weights_name = prefix + PAGE_NAME, prefix + WEIGHTS_NAME
    bench = read_bench(run.path)
    if bench is not None:  # `netsculpt bench RUN_DIR` timed the run's models: their per-runtime page
        _write_html(target.parent / runtimes_name, runtimes_page(run, bench, target.name))
    written = _write_weights_page(run, target.parent / weights_name, target.name)
    return _write_html(target, run_page(run, weights_name if written else None, runtimes_name))


def _write_weights_page(run, path: Path, report_name: str) -> bool:
    """The weights page of the final saved model at ``path``; skipped (with a log line, False) when it
    cannot be loaded."""
    import logging

    from netsculpt.errors import CheckpointError, ConfigError
    from netsculpt.report.weights_page import final_model_dir, weights_page, weights_rows

    model_dir = final_model_dir(run)
    if model_dir is None:
        return False
    try:
        rows = weights_rows(model_dir)
    except (CheckpointError, ConfigError) as exc:  # e.g. a custom model whose builder is not trusted
        logging.getLogger(__name__).info("no weights page for %s: %s", model_dir, exc)
        return False
    _write_html(path, weights_page(run, model_dir, rows, report_name))
    return True


def run_labels(run_dirs: Sequence[PathLike]) -> list[str]:
    """Short, distinct names for runs: the folder name, with its parent when two folders share a name."""
    paths = [Path(d).resolve() for d in run_dirs]
    folders: dict[str, set[Path]] = {}
    for p in paths:
        folders.setdefault(p.name, set()).add(p)
    labels = [f"{p.parent.name}/{p.name}" if len(folders[p.name]) > 1 else p.name for p in paths]
    seen: dict[str, int] = {}
    numbered = []
    for label in labels:  # still equal (the same folder twice): number them
        seen[label] = seen.get(label, 0) + 1
        numbered.append(f"{label} #{seen[label]}" if labels.count(label) > 1 else label)
    return numbered


def write_comparison(run_dirs: Sequence[PathLike], out_dir: PathLike) -> Path:
    """Compare runs on shared plots (each run its own colour and front); writes ``OUT_DIR/report.html``."""
    if len(run_dirs) < 2:
        raise ConfigError(
            f"a comparison needs at least two run directories, got {len(run_dirs)}; "
            "for one run use `netsculpt report RUN_DIR`"
        )
    runs = [load_run(d, label=label) for d, label in zip(run_dirs, run_labels(run_dirs))]
    out = Path(out_dir)
    if out.suffix.lower() in (".html", ".htm"):
        raise ConfigError(f"--out is a directory for the comparison report, got a file name {str(out)!r}")
    out.mkdir(parents=True, exist_ok=True)
    return _write_html(out / REPORT_NAME, comparison_page(runs, out))
