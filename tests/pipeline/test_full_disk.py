"""A run that hits a full disk stops with a clear error, keeps its finished stages, and finishes later."""

from __future__ import annotations

import contextlib
import errno
import os

import pytest
from benchmarks._kill_points import fingerprint

from netsculpt.cli import main
from netsculpt.errors import DiskFullError
from netsculpt.pipeline import parse_recipe, run_recipe
from netsculpt.pipeline import stages as stage_module
from tests._disk import file_size_limit, fill, small_tmpfs, snapshot

TEXT = """
name: full_disk
model: {name: lenet5}
data: {name: mnist5k, limit: 128}
baseline: {train: {preset: default, epochs: 1}}
stages:
  - prune: {criterion: l1, widths: {conv1: 4, conv2: 6}, calib_batches: 1}
  - finetune: {epochs: 1}
outputs: {latency_runs: 1, report: false}
"""


def _stop_before_finetune(run_dir, monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setitem(stage_module.STAGES, "finetune", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_recipe(parse_recipe(TEXT), TEXT, run_dir)


def _finished_stages(run_dir):
    return {k: v for k, v in snapshot(run_dir).items() if k.startswith(("00_", "01_"))}


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["file size limit", "full tmpfs"])
def test_a_full_disk_is_a_clear_error_and_the_run_resumes_once_there_is_room(
    tmp_path, monkeypatch, capsys, limit
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(TEXT)
    straight = run_recipe(parse_recipe(TEXT), TEXT, tmp_path / "straight")
    with small_tmpfs("24m") if limit == "full tmpfs" else contextlib.nullcontext(tmp_path) as disk:
        run_dir = disk / "run"
        _stop_before_finetune(run_dir, monkeypatch)
        kept = _finished_stages(run_dir)
        capsys.readouterr()
        argv = ["--quiet", "compress", str(recipe), "--out", str(run_dir)]
        if limit == "full tmpfs":
            filler = fill(disk, leave=100_000)  # room for the small files, not for a checkpoint
            code = main(argv)
        else:
            with file_size_limit(150_000):  # the pruned LeNet's checkpoint is > 200 kB
                code = main(argv)
        err = capsys.readouterr().err
        assert code == 1 and "netsculpt compress: error: cannot write" in err and "Traceback" not in err
        assert ("disk is full" if limit == "full tmpfs" else "file size limit") in err
        assert "checkpoint.pt" in err and "intact" in err
        assert _finished_stages(run_dir) == kept  # the previous good state, byte for byte
        assert not (run_dir / "results.json").exists()
        assert not [p for p in run_dir.rglob(".*.tmp")]
        if limit == "full tmpfs":
            filler.unlink()
        assert main(argv) == 0  # room again: the same command resumes and finishes
        assert fingerprint(run_dir) == fingerprint(tmp_path / "straight")
        assert straight["after"]["params"] < straight["before"]["params"]


def test_a_writer_that_is_not_netsculpts_failing_on_a_full_disk_is_reported_as_such(tmp_path, monkeypatch):
    def export(*args, **kwargs):  # as torch's C++ writers fail: the errno only on the exception's context
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
            ) from None

    monkeypatch.setitem(stage_module.STAGES, "baseline", export)
    with pytest.raises(DiskFullError, match="the disk is full") as caught:
        run_recipe(parse_recipe(TEXT), TEXT, tmp_path)
    assert str(tmp_path) in str(caught.value) and "rerun the same command" in str(caught.value)
