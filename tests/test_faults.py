"""Fault points: free unless asked for, traced in order, and parsed strictly."""

from __future__ import annotations

import pytest

from netsculpt import faults


@pytest.fixture(autouse=True)
def _clear():
    yield
    faults.configure(None, None)


def test_a_trace_lists_every_point_reached_in_order(tmp_path) -> None:
    trace = tmp_path / "trace"
    faults.configure(None, str(trace))
    for name in ("stage:prune:start", "write:a.json", "wrote:a.json"):
        faults.point(name)
    assert trace.read_text().split() == ["stage:prune:start", "write:a.json", "wrote:a.json"]


def test_nothing_happens_without_a_fault(tmp_path) -> None:
    faults.configure(None, None)
    faults.point("train:batch")  # would kill the test process if a fault were armed
    faults.configure("train:batch@3", None)
    faults.point("train:batch")
    faults.point("train:batch")  # the second of three: still alive
    faults.point("wrote:x.json")


@pytest.mark.parametrize("bad", ["train:batch", "train:batch@0", "@3", "train:batch@x"])
def test_a_malformed_fault_is_refused(bad) -> None:
    with pytest.raises(ValueError, match="NAME@N"):
        faults.configure(bad)
