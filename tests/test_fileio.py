"""Atomic writes never follow a symlink out of the output folder."""

from __future__ import annotations

import os

from netsculpt.fileio import write_json, write_text


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
