"""One run per run folder: the lock names its holder and dies with it."""

from __future__ import annotations

import json
import os

import pytest

from netsculpt.errors import RunLockedError
from netsculpt.pipeline import parse_recipe, run_recipe
from netsculpt.pipeline.lock import LOCK_FILE, RunLock
from tests._disk import snapshot

TEXT = "name: t\nmodel: {name: lenet5}\ndata: {name: mnist5k, limit: 64}\n"


def test_a_held_folder_is_refused_with_the_holders_pid(tmp_path) -> None:
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
        with pytest.raises(RunLockedError, match=f"PID {os.getpid()}") as caught:
            RunLock(tmp_path).acquire()  # a second open file: flock refuses it even in this process
        assert caught.value.pid == os.getpid() and "--out" in str(caught.value)
    with RunLock(tmp_path):  # released: free again
        pass


def test_run_recipe_into_a_held_folder_writes_nothing(tmp_path) -> None:
    (tmp_path / "recipe.yaml").write_text(TEXT)
    with RunLock(tmp_path):
        before = snapshot(tmp_path)
        with pytest.raises(RunLockedError):
            run_recipe(parse_recipe(TEXT), TEXT, tmp_path, force=True)
        assert snapshot(tmp_path) == before
