"""``--parts memory`` of ``benchmarks/weights.py``: peak extra resident memory of DKM's forward + backward on
a ResNet-50-sized layer, each setting in its own subprocess (a fresh peak per setting)."""

from __future__ import annotations

import subprocess
import sys

from _tables import table

MEMORY_CODE = """
import sys, time, torch
from pathlib import Path
from torch import nn
from netsculpt.weights import DKMConfig, prepare_dkm_
torch.set_num_threads(1)
bits, max_elements = int(sys.argv[1]), (None if sys.argv[2] == "none" else int(sys.argv[2]))
layer = nn.Conv2d(512, 512, 3, bias=False)  # ResNet-50 layer4 3x3 conv: 2,359,296 weights
prepare_dkm_(nn.Sequential(layer), DKMConfig(bits=bits, max_elements=max_elements, init_samples=20_000))
layer.train()
def rss(field):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
    return int(line.split()[1])
Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current resident size
base = rss("VmRSS:")
start = time.perf_counter()
layer.weight.square().sum().backward()
print(base, rss("VmHWM:"), time.perf_counter() - start)
"""


def part_memory(args) -> None:
    rows = []
    for bits, max_elements in ((4, "none"), (4, str(1 << 22)), (8, str(1 << 22))):
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_CODE, str(bits), max_elements],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            rows.append((bits, max_elements, "failed: " + done.stderr.strip().splitlines()[-1], "", ""))
            continue
        base, peak, seconds = done.stdout.split()
        matrix = 2_359_296 * 2**bits * 4
        rows.append(
            (
                bits,
                max_elements,
                f"{matrix / 2**30:.2f} GiB",
                f"{(int(peak) - int(base)) / 1024:,.0f} MiB",
                f"{float(seconds):.1f}",
            )
        )
    table(
        "DKM forward + backward on a 512x512x3x3 conv (ResNet-50 layer4): peak extra resident memory",
        ("bits", "max_elements", "one attention matrix", "peak extra RSS", "seconds"),
        rows,
    )
