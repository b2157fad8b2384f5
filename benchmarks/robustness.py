"""How netsculpt's readers take corrupted and hostile files: counts of cases tried per reader.

Every file format netsculpt reads (saved-model spec and weights, packed palettes, ONNX, recipes,
results.json, MNIST IDX, CIFAR pickles) is fed cases that hypothesis derives from a real file (see
tests/_fuzz.py). A case must load or end in a netsculpt error; anything else is a crash, and a crash
fails the run. Cases run in a temporary working directory that must stay empty.

    PYTHONPATH=src:. python benchmarks/robustness.py [--examples 1000] [--readers 'recipe YAML' ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests._fuzz import READERS, run_reader


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="cases per reader")
    parser.add_argument("--readers", nargs="*", default=list(READERS), choices=list(READERS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'reader':<20} {'cases':>7} {'loaded':>7} {'refused':>8} {'crashed':>8} {'seconds':>8}")
    failed = 0
    for name in args.readers:
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            started = time.perf_counter()
            counts = run_reader(READERS[name], Path(tmp) / "work", args.examples)
            stray = sorted(set(os.listdir(tmp)) - {"work"})
            os.chdir("/")
        crashes = {k: v for k, v in counts.items() if k.startswith("crash")}
        crashed = sum(crashes.values())
        print(
            f"{name:<20} {sum(counts.values()):>7} {counts['loaded']:>7} {counts['refused']:>8} "
            f"{crashed:>8} {time.perf_counter() - started:>8.1f}"
        )
        for outcome, n in crashes.items():
            print(f"    {n} x {outcome}")
        if stray:
            print(f"    wrote outside its folder: {stray}")
        failed += bool(crashed or stray)
    print(
        "every case loaded or was refused with a netsculpt error"
        if not failed
        else f"{failed} reader(s) failed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
