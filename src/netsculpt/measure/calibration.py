"""A fixed CPU workload whose speed is printed beside every timing.

Benchmarks run on shared machines whose speed changes from hour to hour. Timing the same tiny,
fixed workload next to each measurement says whether a slow number means a slow model or a busy
machine: latencies from two runs compare fairly once divided by their calibrations.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch

_MATMUL_N = 256  # 2 * 256^3 = 33.6 MFLOP a product: big enough to reach BLAS speed, ~1 ms on one core
_MATMUL_REPEATS = 20  # ~20-70 ms a round: many scheduler slices, so a busy core still shows
_LOOP_ITERATIONS = 200_000  # ~10-20 ms of interpreter work on a 2020s core (the figure is this time)
_ROUNDS = 5
_LOOP_ROUNDS = 3


@dataclass
class Calibration:
    """Speed of this machine right now: single-thread fp32 matmul and a pure-Python loop."""

    matmul_gflops: float
    python_loop_ms: float

    def __str__(self) -> str:
        return (
            f"CPU: {self.matmul_gflops:.1f} GFLOP/s 1-thread matmul, Python loop {self.python_loop_ms:.1f} ms"
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _python_loop() -> int:
    total = 0
    for i in range(_LOOP_ITERATIONS):
        total += i * i % 7
    return total


def cpu_calibration() -> Calibration:
    """Time the fixed workloads (about 0.15 s in all); each figure is the median of a few rounds.

    It runs beside every latency measurement (each pipeline stage), so it is kept short: the matmul
    figure is a rate, and fewer products per round change its noise, not its meaning.

    The matmul runs on one thread whatever torch's setting, so the figure tracks one core's speed and
    how busy the machine is, not how many cores this process was given.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(_MATMUL_N, _MATMUL_N, generator=generator)
    b = torch.randn(_MATMUL_N, _MATMUL_N, generator=generator)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.mm(a, b)  # warm-up: first BLAS call pays for its set-up
        matmul_s = []
        for _ in range(_ROUNDS):
            start = time.perf_counter()
            for _ in range(_MATMUL_REPEATS):
                torch.mm(a, b)
            matmul_s.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    loop_ms = []
    for _ in range(_LOOP_ROUNDS):
        start = time.perf_counter()
        _python_loop()
        loop_ms.append((time.perf_counter() - start) * 1e3)
    flops = 2 * _MATMUL_N**3 * _MATMUL_REPEATS
    return Calibration(
        matmul_gflops=flops / statistics.median(matmul_s) / 1e9, python_loop_ms=statistics.median(loop_ms)
    )
