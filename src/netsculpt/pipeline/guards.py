"""After-stage latency guards: is a compressed model slower than the one it came from?

Pruning to ragged widths, a palette the runtime decodes on every call, or an int8 graph full of
quantize/dequantize pairs can each make a model *smaller but slower*. After every prune, search, cluster,
quantize, prune_depth and compound stage the runner times the stage's input and output on the recipe's
``deploy`` runtime (threads, batch; a compound stage's sides each at their own input size) — a few runs
in 3 alternating rounds, median, on the calling thread's CPU clock so a busy machine's preemptions do not
decide it — and records the numbers in the stage's record. A stage whose
output is more than ``deploy.slower_margin`` slower is flagged in the CLI summary and the report;
``deploy.fail_if_slower`` stops the run with the numbers (the stages finished so far are kept).

An int8 stage's output is an artefact of its own runtime (ONNX Runtime, OpenVINO, an exported program)
whatever the deploy runtime; both sides are then timed on that runtime, so the guard compares like with
like (before 2026-12-07 an OpenVINO int8 output was timed against its float input on PyTorch eager).
"""

from __future__ import annotations

import copy
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import NetsculptError

GUARDED = ("prune", "search", "cluster", "quantize", "prune_depth", "compound")
ROUNDS = 3
WARMUP = 2


class SlowerStageError(NetsculptError, RuntimeError):
    """A guarded stage made the model slower and the recipe says ``deploy.fail_if_slower: true``."""


def wants_guard(kind: str, deploy: Any) -> bool:
    return bool(deploy.guard) and kind in GUARDED


def snapshot(model: nn.Module | None) -> nn.Module | None:
    """A copy of the stage's input (some stages, clustering, change the model in place)."""
    if model is None:
        return None
    try:
        return copy.deepcopy(model)
    except Exception:  # an ONNX Runtime session does not copy; such an input is not timed
        return None


def _onnx_path(model: nn.Module) -> Path | None:
    path = getattr(model, "path", None)
    return Path(path) if hasattr(model, "session") and str(path).endswith(".onnx") else None


def _timer(model: nn.Module, runtime: str, x: torch.Tensor, tmp: Path, name: str) -> Callable[[int], float]:
    """``timer(runs)`` -> median ms of ``model`` on ``runtime``, prepared once (exported, session made);
    a registry runtime's timer carries ``close`` (frees what it prepared)."""
    from netsculpt.measure.latency_model import median_time_ms

    path = _onnx_path(model)
    if runtime == "torch" and path is None:
        model.eval()

        def run_torch(runs: int) -> float:
            with torch.no_grad():
                return median_time_ms(lambda: model(x), runs, WARMUP, "thread")

        return run_torch
    if runtime == "onnxruntime" or path is not None:
        from netsculpt.measure.onnx_runtime import _feeds, _session, export_onnx

        session = _session(path or export_onnx(model, (x,), tmp / f"{name}.onnx"))
        feeds = _feeds(session, (x,))
        return lambda runs: median_time_ms(lambda: session.run(None, feeds), runs, WARMUP, "thread")
    from netsculpt.runtimes import get_runtime  # another registered runtime (openvino, compile)

    prepared = get_runtime(runtime).prepare(model, (x,), torch.get_num_threads())

    def run_prepared(runs: int) -> float:
        return median_time_ms(prepared.call, runs, WARMUP, "thread")

    run_prepared.close = prepared.close  # type: ignore[attr-defined]
    return run_prepared


def guard_runtime(after: nn.Module, deploy_runtime: str) -> str:
    """The runtime both sides are timed on: an int8 artefact's own (netsculpt.runtimes.artefacts), else
    the recipe's deploy runtime."""
    from netsculpt.runtimes.artefacts import is_artefact, timing_runtime

    if _onnx_path(after) is not None:
        return "onnxruntime"
    return timing_runtime(after) if is_artefact(after) else deploy_runtime


def check_stage(
    before: nn.Module | None,
    after: nn.Module,
    example: torch.Tensor,
    deploy: Any,
    input_example: torch.Tensor | None = None,
) -> dict:
    """Time ``before`` and ``after`` side by side on ``deploy``'s runtime; the guard's record.

    ``input_example`` is the stage input's own example when the stage changed the input size (compound):
    each side is timed at the resolution it runs at, and the record gives both shapes."""
    runtime = guard_runtime(after, deploy.runtime)
    record: dict[str, Any] = {"runtime": runtime, "threads": deploy.threads, "batch": deploy.batch}
    if input_example is not None and input_example.shape != example.shape:
        record["input_shape"], record["output_shape"] = list(input_example.shape), list(example.shape)
    if before is None:
        return {**record, "error": "the stage's input could not be copied for timing"}
    x = example.expand(deploy.batch, *example.shape[1:]).clone()
    x_in = (
        x if input_example is None else input_example.expand(deploy.batch, *input_example.shape[1:]).clone()
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(deploy.threads)
    timers: list[Callable[[int], float]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="netsculpt-guard-") as tmp:
            timers.append(_timer(before, runtime, x_in, Path(tmp), "input"))
            timers.append(_timer(after, runtime, x, Path(tmp), "output"))
            times: list[list[float]] = [[], []]
            for _ in range(ROUNDS):  # alternating: a machine that slows down slows both alike
                for i, timer in enumerate(timers):
                    times[i].append(float(timer(deploy.guard_runs)))
    except Exception as exc:  # a runtime that cannot run the model is a finding, not a crash
        return {
            **record,
            "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
        }
    finally:
        for timer in timers:
            getattr(timer, "close", lambda: None)()
        torch.set_num_threads(threads)
    input_ms, output_ms = (statistics.median(t) for t in times)
    speedup = input_ms / output_ms if output_ms > 0 else float("inf")
    slower = output_ms > input_ms * (1 + deploy.slower_margin)
    return {**record, "input_ms": input_ms, "output_ms": output_ms, "speedup": speedup, "slower": slower}


def describe(kind: str, guard: dict) -> str:
    """One line a person reads: ``prune: 2.41 ms -> 1.32 ms on torch (batch 1, 1 thread), 1.83x faster``."""
    where = f"on {guard['runtime']} (batch {guard['batch']}, {guard['threads']} thread(s))"
    if "error" in guard:
        return f"{kind}: not timed {where}: {guard['error']}"
    if guard["speedup"] >= 1:
        change = f"{guard['speedup']:.2f}x faster"
    else:  # capitals only past the margin, where the guard flags it; within it, timing noise
        word = "SLOWER" if guard.get("slower") else "slower (within the margin)"
        change = f"{1 / guard['speedup']:.2f}x {word}"
    return f"{kind}: {guard['input_ms']:.3f} ms -> {guard['output_ms']:.3f} ms {where}, {change}"


def recheck(record: dict, deploy: Any) -> None:
    """Re-judge a resumed stage's recorded timings with the recipe's current ``deploy.slower_margin``
    (an edit of the margin keeps the finished stages, so their ``slower`` flag must follow it)."""
    guard = record.get("guard") or {}
    if "input_ms" in guard and "output_ms" in guard:
        guard["slower"] = guard["output_ms"] > guard["input_ms"] * (1 + deploy.slower_margin)


def enforce(record: dict, deploy: Any) -> None:
    """Raise :class:`SlowerStageError` with the numbers when the recipe asks to stop on a slower stage."""
    guard = record.get("guard") or {}
    if deploy.fail_if_slower and guard.get("slower"):
        raise SlowerStageError(
            f"stage {record['dir']} made the model slower — {describe(record['kind'], guard)} (more than "
            f"{deploy.slower_margin:.0%}), and the recipe sets deploy.fail_if_slower. The stages so far are "
            "kept in the run folder. Try round_to: auto (or hw) in the prune stage, another quantize "
            "runtime, or rerun the same command with --set deploy.fail_if_slower=false (or a larger "
            "deploy.slower_margin) to keep going from here: the finished stages are resumed, not redone."
        )
