"""Time one model on several runtimes, thread counts and batch sizes: one row per combination.

For each (threads, batch) every runtime is prepared first, then timed in alternating rounds (runtime A,
B, C, A, B, C, ...) so a machine that slows down midway slows every runtime alike; the latency is the
median over all rounds' calls, by the calling thread's CPU clock at one thread and the wall clock at more
(:func:`clock`), and the range of the rounds' medians says how far to trust a difference. Memory is the
resident set size the process gained from just before a runtime's ``prepare`` to the peak during it and
its warm-up calls, sampled every millisecond: weights, arenas and activations as the operating system
sees them. Memory an earlier runtime freed can be reused, so the figure is a lower bound; run one
runtime per process for exact numbers.
"""

from __future__ import annotations

import functools
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from netsculpt.measure._inputs import as_tuple, at_batch
from netsculpt.measure.latency import check_counts
from netsculpt.modes import module_modes, restore_modes
from netsculpt.runtimes.base import Prepared, RuntimeUnsupported, first_line, get_runtime


@dataclass
class BenchRow:
    """One runtime at one thread count and batch size; ``error`` says why it has no timing."""

    model: str
    runtime: str
    threads: int
    batch: int
    latency_ms: float | None = None
    # the range of the rounds' medians as a share of the median, in %: two rows closer than this are
    # within the machine's noise (at batch 8 identical runs of one model moved by 10-20 % here)
    round_spread_pct: float | None = None
    throughput: float | None = None  # samples per second
    # None when the process gained no resident memory it could see: the runtime reused memory an earlier one
    # freed (ONNX Runtime after eager, typically), so there is no figure, and 0 B would read as one
    peak_memory_bytes: int | None = None
    prepare_seconds: float | None = None
    accuracy: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _PeakRss:
    """Samples this process's resident set size in a background thread; ``peak - start`` is what was added."""

    def __init__(self, interval: float = 0.001) -> None:
        import psutil

        self.process = psutil.Process(os.getpid())
        self.interval = interval
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def added(self) -> int:
        return max(0, self.peak - self.start)


def clock(threads: int) -> Callable[[], int]:
    """Nanoseconds: the calling thread's CPU time at one thread (every runtime here computes on the
    calling thread then, and a shared machine's preemptions inflated wall-clock medians up to 50x: a
    0.15 ms LeNet-5 read 8 ms on OpenVINO under load 17 on 2 cores), else the wall clock (other
    threads' work is invisible to the calling thread's clock)."""
    return time.thread_time_ns if threads == 1 else time.perf_counter_ns


def all_threads() -> list[int]:
    """1..nproc: every thread count this machine can give one process."""
    return list(range(1, (os.cpu_count() or 1) + 1))


def bench_model(
    model: nn.Module,
    example_inputs: Any,
    runtimes: Sequence[str],
    *,
    name: str = "model",
    threads: Sequence[int] = (1,),
    batches: Sequence[int] = (1,),
    runs: int = 20,
    warmup: int = 3,
    rounds: int = 3,
    on_row: Callable[[BenchRow], None] | None = None,
) -> list[BenchRow]:
    """Rows for every runtime x threads x batch; a runtime that cannot run the model gets a row saying why."""
    check_counts(runs, warmup)
    inputs = as_tuple(example_inputs)
    names = [get_runtime(r).name for r in runtimes]
    rows: list[BenchRow] = []
    # every runtime's prepare enters eval mode: the model's own flags, taken once here, come back at the end
    modes = module_modes(model) if isinstance(model, nn.Module) else []
    try:
        for n in threads:
            for batch in batches:
                try:
                    batched = at_batch(inputs, batch)
                except Exception as exc:  # structured inputs have no batch dim to repeat
                    for r in names:
                        rows.append(BenchRow(name, r, n, batch, error=first_line(exc)))
                    continue
                rows += _one_config(model, batched, names, name, n, batch, runs, warmup, rounds)
    finally:
        restore_modes(modes)
    if on_row is not None:
        for row in rows:
            on_row(row)
    return rows


def _one_config(
    model: nn.Module, inputs: tuple[Any, ...], names: list[str], name: str, threads: int, batch: int,
    runs: int, warmup: int, rounds: int,
) -> list[BenchRow]:  # fmt: skip
    rows = {r: BenchRow(name, r, threads, batch) for r in names}
    candidates: dict[str, Callable[[], Prepared]] = {}
    for r in names:
        runtime = get_runtime(r)
        why = runtime.available()
        if why is not None:
            rows[r].error = f"not available: {why}"
        else:
            candidates[r] = functools.partial(runtime.prepare, model, inputs, threads)

    @contextmanager
    def watch(r: str) -> Iterator[None]:  # prepare and warm-up: their seconds and the memory they add
        t0 = time.perf_counter()
        with _PeakRss() as rss:
            yield
        rows[r].prepare_seconds = time.perf_counter() - t0
        rows[r].peak_memory_bytes = rss.added or None

    def failed(r: str, exc: Exception) -> None:  # a runtime's own failure mid-run is a row too, never a crash
        rows[r].error = str(exc) if isinstance(exc, RuntimeUnsupported) else f"failed: {first_line(exc)}"

    samples = time_alternating(
        candidates, threads=threads, runs=runs, warmup=warmup, rounds=rounds, watch=watch, on_error=failed
    )
    for r, per in samples.items():
        median = statistics.median([t for times in per for t in times])
        rows[r].latency_ms = median
        rows[r].throughput = batch / median * 1e3
        if len(per) > 1 and median > 0:
            medians = [statistics.median(times) for times in per]
            rows[r].round_spread_pct = (max(medians) - min(medians)) / median * 100
    return [rows[r] for r in names]


def time_alternating(
    candidates: dict[str, Callable[[], Prepared]],
    *,
    threads: int,
    runs: int,
    warmup: int,
    rounds: int,
    models: Sequence[nn.Module] = (),
    watch: Callable[[str], AbstractContextManager[Any]] | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
) -> dict[str, list[list[float]]]:
    """Milliseconds of every timed call, round by round, of each candidate that prepared.

    The one timing loop of ``bench`` and ``runtime: auto``'s int8 selection, so their figures compare:
    each candidate is prepared and warmed up (inside ``watch(name)``, where a caller measures that), then
    all are called in alternating rounds of ``ceil(runs / rounds)`` calls by :func:`clock`, then closed
    last prepared first (each undoes its own changes), and every module of ``models`` gets its own
    train/eval flag back. A prepare or warm-up that raises goes to ``on_error(name, exc)`` and that
    candidate is left out; without ``on_error`` the error propagates.
    """
    per_round = max(1, -(-runs // rounds))
    modes = [module_modes(m) for m in models]  # every prepare enters eval mode: put each flag back
    opened: list[Prepared] = []
    prepared: dict[str, Prepared] = {}
    try:
        for name, prepare in candidates.items():
            try:
                with watch(name) if watch is not None else nullcontext():
                    p = prepare()
                    opened.append(p)
                    for _ in range(warmup):
                        p.call()
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(name, exc)
                continue
            prepared[name] = p
        samples: dict[str, list[list[float]]] = {name: [] for name in prepared}
        now = clock(threads)
        for _ in range(rounds):
            for name, p in prepared.items():
                times = []
                for _ in range(per_round):
                    start = now()
                    p.call()
                    times.append((now() - start) / 1e6)
                samples[name].append(times)
    finally:
        for p in reversed(opened):  # last prepared, first closed: each undoes its own changes
            p.close()
        for saved in modes:
            restore_modes(saved)
    return samples
