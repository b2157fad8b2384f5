"""A damaged search state file: refused with what to do (search/state.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsculpt.errors import CheckpointError
from netsculpt.search.state import STATE_FILE, STATE_VERSION, SearchState


def _saved(tmp_path: Path) -> Path:
    state = SearchState(tmp_path, {"target": 0.5}, resume=False)
    state.save({"generation": 3})
    return tmp_path / STATE_FILE


def test_an_intact_state_resumes(tmp_path: Path) -> None:
    _saved(tmp_path)
    state = SearchState(tmp_path, {"target": 0.5}, resume=True)
    assert state.resumed and state.progress == {"generation": 3}


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other_version"])
def test_a_damaged_state_says_to_restore_or_delete_it(tmp_path: Path, damage: str) -> None:
    # before: "... is not valid JSON" with no word on how to go on
    path = _saved(tmp_path)
    text = path.read_text()
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00\x01garbage")
    else:
        path.write_text(json.dumps({**json.loads(text), "version": STATE_VERSION + 1}))
    with pytest.raises(CheckpointError, match="delete it to start the search over") as info:
        SearchState(tmp_path, {"target": 0.5}, resume=True)
    assert info.value.__cause__ is None and str(tmp_path) in str(info.value)
