"""Atomic writes: on a full disk a DiskFullError that names the file, and the previous file intact; a symlink
at the target is replaced, never followed out of the output folder."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from netsculpt.errors import DiskFullError
from netsculpt.fileio import atomic_write, disk_full_reason, torch_save, write_json, write_text
from tests._disk import file_size_limit, small_tmpfs

BIG = 400_000  # bytes each writer below tries to write: well past the limits set


def _writers():
    """The three ways netsculpt writes files: its own JSON, torch.save (which drops the errno: its C++
    stream reports 'unexpected pos'), and safetensors (a Rust error that carries it)."""
    return {
        "json": lambda path: write_json(path, {"x": "a" * BIG}),
        "torch": lambda path: torch_save(path, {"w": torch.zeros(BIG // 4)}),
        "safetensors": lambda path: atomic_write(
            path, lambda p: save_file({"w": torch.zeros(BIG // 4)}, str(p))
        ),
    }


@pytest.mark.parametrize("kind", ["json", "torch", "safetensors"])
def test_a_write_past_the_file_size_limit_is_a_clear_error_and_keeps_the_old_file(tmp_path, kind) -> None:
    target = tmp_path / f"out.{kind}"
    target.write_text("previous good state")
    with file_size_limit(100_000), pytest.raises(DiskFullError, match="file size limit") as caught:
        _writers()[kind](target)
    assert str(target) in str(caught.value) and "intact" in str(caught.value)
    assert target.read_text() == "previous good state"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # the temporary file is gone


@pytest.mark.parametrize("kind", ["json", "torch", "safetensors"])
def test_a_full_tmpfs_is_a_clear_error_and_keeps_the_old_file(kind) -> None:
    with small_tmpfs("256k") as disk:
        target = disk / f"out.{kind}"
        write_json(target, {"state": "good"})
        with pytest.raises(DiskFullError, match="disk is full") as caught:
            _writers()[kind](target)
        assert str(target) in str(caught.value)
        assert json.loads(target.read_text()) == {"state": "good"}
        assert [p.name for p in disk.iterdir()] == [target.name]
        write_json(target, {"state": "newer"})  # the room the failed write took is free again
        assert json.loads(target.read_text()) == {"state": "newer"}


def test_other_write_failures_are_not_reported_as_a_full_disk(tmp_path) -> None:
    def broken(path):
        path.write_text("half")
        raise ValueError("the writer's own bug")

    with pytest.raises(ValueError, match="own bug"):
        atomic_write(tmp_path / "x.json", broken)
    assert not list(tmp_path.iterdir())
    assert disk_full_reason(RuntimeError("unexpected pos 704 vs 598"), tmp_path) is None
    wrapped = RuntimeError("unexpected pos 704 vs 598")  # what torch.save raises; the errno is beneath
    wrapped.__context__ = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert "disk is full" in disk_full_reason(wrapped, tmp_path)


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(outside, run / "report.html")  # planted in a run folder someone handed over
    write_text(run / "report.html", "<html></html>")
    assert outside.read_text() == "keep me"
    assert not (run / "report.html").is_symlink() and (run / "report.html").read_text() == "<html></html>"
    os.symlink(outside, run / "results.json")
    write_json(run / "results.json", {"version": 1})
    assert outside.read_text() == "keep me"
