"""Tracing + grouping + surgery speed and memory: netsculpt vs Torch-Pruning 1.6.1, side by side.

Both prune torchvision ResNet-50 (1x3x224x224) by 50% per group with L1 magnitude, keeping the classifier.
Runs alternate between the tools (fresh model copy each time, copying not timed) so machine-load drift
hits both alike; we report medians, the ratio, and a CPU calibration before and after. Surgery peak
memory is how far the process's resident set rises above its size while the surgery step alone runs
(kernel high-water mark, reset through /proc/self/clear_refs).

    make bench-deps && PYTHONPATH=src python benchmarks/graph_speed.py [--repeats 5] [--model resnet50]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).parent))
from _calibration import print_calibration

import netsculpt as ns
from netsculpt.surgery import apply_plan_


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_increase(fn: Callable[[], object]) -> int:
    """Bytes the process's resident set rose above its starting size while ``fn`` ran (Linux)."""
    import gc

    gc.collect()
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    fn()
    return max(0, _status_kib("VmHWM") - before) * 1024


def netsculpt_prune(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    plan, graph = ns.plan_pruning(model, x, criterion="l1", ratio=0.5)
    return apply_plan_(model, graph, plan)


def torch_pruning_prune(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    import torch_pruning as tp

    pruner = tp.pruner.MetaPruner(
        model,
        x,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5,
        ignored_layers=[model.fc],
    )
    pruner.step()
    return model


def timed(fn: Callable, base: torch.nn.Module, x: torch.Tensor) -> tuple[float, torch.nn.Module]:
    model = copy.deepcopy(base)
    start = time.perf_counter()
    out = fn(model, x)  # Torch-Pruning traces through autograd, so no no_grad() for either tool
    return time.perf_counter() - start, out


def surgery_peak_extra(tool: str, base: torch.nn.Module, x: torch.Tensor) -> int:
    """Peak extra memory of the surgery step alone (graph building and scoring done beforehand)."""
    model = copy.deepcopy(base)
    if tool == "netsculpt":
        plan, graph = ns.plan_pruning(model, x, criterion="l1", ratio=0.5)
        return peak_rss_increase(lambda: apply_plan_(model, graph, plan))
    import torch_pruning as tp

    pruner = tp.pruner.MetaPruner(
        model,
        x,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5,
        ignored_layers=[model.fc],
    )
    return peak_rss_increase(pruner.step)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import torch_pruning as tp
    except ImportError:
        print("Torch-Pruning is a benchmark-only extra: run `make bench-deps` first")
        return 2
    base = torchvision.models.get_model(args.model, weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    print(
        f"{args.model}, 50% per group, L1; netsculpt {ns.__version__} vs torch-pruning (pip 1.6.1, reports "
        f"{tp.__version__}); torch threads {args.threads}"
    )
    print_calibration("before")
    tools = {"netsculpt": netsculpt_prune, "torch-pruning": torch_pruning_prune}
    for fn in tools.values():  # warm-up: imports, allocator, first-call caches
        timed(fn, base, x)
    times: dict[str, list[float]] = {k: [] for k in tools}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn in tools.items():
            seconds, outputs[name] = timed(fn, base, x)
            times[name].append(seconds)
    print_calibration("after")
    p0 = sum(p.numel() for p in base.parameters())
    print(
        f"\n{'tool':<15}{'median s':>10}{'min s':>9}{'params after':>16}{'MACs after':>16}"
        f"{'surgery peak MiB':>18}"
    )
    for name in tools:
        m = outputs[name]
        macs = ns.measure(m, x, latency=False).macs
        extra = surgery_peak_extra(name, base, x) / 2**20
        print(
            f"{name:<15}{statistics.median(times[name]):>10.3f}{min(times[name]):>9.3f}"
            f"{sum(p.numel() for p in m.parameters()):>16,}{macs:>16,}{extra:>18.1f}"
        )
    ratio = statistics.median(times["torch-pruning"]) / statistics.median(times["netsculpt"])
    print(f"\nspeed-up (torch-pruning median / netsculpt median): {ratio:.2f}x  [target >= 2x]")
    print(f"model size: {p0 * 4 / 2**20:.1f} MiB of float32 parameters (the 'one copy' bound for peak extra)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
