"""CPU calibration for benchmarks: print the machine's speed beside every table of timings.

Benchmarks import :func:`print_calibration` (``from _calibration import print_calibration``; the
benchmarks folder is on ``sys.path`` when a script there runs) and call it before and after timing, so
a reader can tell a slow model from a busy machine. Run directly, it prints one calibration.
"""

from __future__ import annotations

import torch

from netsculpt.measure import Calibration, cpu_calibration


def print_calibration(label: str = "") -> Calibration:
    """Measure and print the CPU calibration (about 0.3 s) with torch's thread count; return it."""
    calibration = cpu_calibration()
    prefix = f"[{label}] " if label else ""
    print(f"{prefix}{calibration}; torch threads {torch.get_num_threads()}", flush=True)
    return calibration


if __name__ == "__main__":
    print_calibration()
