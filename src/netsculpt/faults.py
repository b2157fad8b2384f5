"""Fault points: named places where a test may stop this process, to prove a run survives any crash.

A run can die anywhere (OOM killer, a closed laptop, ``kill -9``); what must hold is that rerunning the
command resumes and ends exactly where an uninterrupted run would. Killing at random times rarely hits
the narrow windows that matter (a file written but not yet renamed into place lasts microseconds), so
the places are named, as FoundationDB's and etcd's failpoints are. Each :func:`point` is a no-op unless
a fault is asked for, by :func:`configure` or by environment variables read at import:

- ``NETSCULPT_FAULT=NAME@N``: SIGKILL this process the N-th time (1-based) it reaches point ``NAME``
  (``*@N``: the N-th point of any name; ``NAME@N/stop``: SIGSTOP instead, to freeze a run that holds
  its folder). POSIX only.
- ``NETSCULPT_FAULT_TRACE=FILE``: append every point reached to ``FILE``, one name per line, so a test
  can list the points of a run and choose where to kill the next one.

Points: ``stage:KIND:start`` / ``stage:KIND:done`` (around a pipeline stage), ``train:batch`` (after
each optimizer step), ``train:epoch`` (after an epoch's checkpoint), ``write:NAME`` (a file's bytes are
in its temporary file, not yet renamed onto ``NAME``) and ``wrote:NAME`` (renamed).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass


@dataclass
class _Plan:
    name: str = ""
    at: int = 0
    stop: bool = False
    trace: str = ""
    hits: int = 0


_plan = _Plan()


def configure(fault: str | None = None, trace: str | None = None) -> None:
    """Ask for a fault (``"NAME@N"`` or ``"NAME@N/stop"``) and/or a trace file; None clears each."""
    global _plan
    spec, stop = (fault or ""), False
    if spec.endswith("/stop"):
        spec, stop = spec.removesuffix("/stop"), True
    name, _, at = spec.rpartition("@")
    if spec and not (name and at.isdigit() and int(at) > 0):
        raise ValueError(f"a fault is NAME@N with N >= 1 (e.g. 'train:batch@3'), got {fault!r}")
    _plan = _Plan(name=name, at=int(at) if spec else 0, stop=stop, trace=trace or "")


def point(name: str) -> None:
    """Mark a place a run may be killed (see the module docstring); free when no fault is asked for."""
    if _plan.at or _plan.trace:
        _reach(name)


def _reach(name: str) -> None:
    if _plan.trace:
        with open(_plan.trace, "a", encoding="utf-8") as trace:
            trace.write(name + "\n")
    if _plan.at and _plan.name in (name, "*"):
        _plan.hits += 1
        if _plan.hits == _plan.at:
            sig = signal.SIGSTOP if _plan.stop else signal.SIGKILL
            os.kill(os.getpid(), sig)


configure(os.environ.get("NETSCULPT_FAULT") or None, os.environ.get("NETSCULPT_FAULT_TRACE") or None)
