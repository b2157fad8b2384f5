"""Why MobileNetV2 pruned to 0.5x MACs is not 2x faster on PyTorch eager at batch 1, in numbers.

Eager PyTorch runs every BatchNorm, ReLU6, depthwise conv and residual add as its own memory-bound kernel,
whose time follows the *activation volume* (elements the layers write), not the MACs, plus a fixed cost
per call. A 1x1 conv's MACs fall with the product of its two widths and its output with one width, so at
0.5x MACs the default plan still writes 0.62x the activations. This script prints, for torchvision
MobileNetV2 (random init: latency only), one thread, batch 1, median of alternating rounds:

- plans at 0.5x MACs: the default ``ns.prune`` (``round_to="hw"``), ``round_to=16``, "expansion only"
  (every inverted-residual block's hidden width cut by one common fraction, multiples of 16; the residual
  stream and the stem kept), and 4 whole blocks removed (``ns.prune_depth``) before the default prune,
  with their activation volume;
- each plain, with BatchNorm folded into the convs (``ns.fold``, exact), and folded + channels_last,
  each compared with the unpruned model given the same treatment;
- a least-squares fit ``ms = fixed + a * MACs + b * activations`` over the plain plans, and the ratio that
  fit allows at 0.5x MACs when activations fall as fast as MACs (the ceiling of any channel-only plan
  that keeps every layer).

    PYTHONPATH=src:benchmarks python benchmarks/across_stack_eager.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import copy
import statistics

import numpy as np
import torch
import torchvision
from _calibration import print_calibration
from _tables import table

import netsculpt as ns
from netsculpt.measure import count_macs
from netsculpt.measure.latency_model import median_time_ms

STEP = 16


def activation_volume(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Elements written by the leaf modules in one forward pass."""
    total = [0]

    def hook(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        total[0] += out.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total[0]


def expansion_only(base: torch.nn.Module, x: torch.Tensor, macs: float) -> torch.nn.Module:
    """Every block's hidden width times one fraction (multiples of 16), bisected to ``macs``."""
    hidden = {f"features.{i}.conv.0.0": base.features[i].conv[0][0].out_channels for i in range(2, 18)}
    total = count_macs(base, x)[0]

    def build(f: float) -> torch.nn.Module:
        widths = {k: max(STEP, round(v * f / STEP) * STEP) for k, v in hidden.items()}
        return ns.prune(base, x, widths=widths, round_to=1)

    lo, hi = 0.05, 1.0
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if count_macs(build(mid), x)[0] / total > macs else (mid, hi)
    return build(lo)


def depth_then_width(base: torch.nn.Module, x: torch.Tensor, blocks: int, macs: float) -> torch.nn.Module:
    """``blocks`` residual blocks removed (``ns.prune_depth``, output-change criterion), then the default
    channel prune to ``macs`` of the original: each removed block also removes its per-call costs."""
    shallow = ns.prune_depth(base, x, blocks=blocks)
    left = count_macs(shallow, x)[0] / count_macs(base, x)[0]
    return ns.prune(shallow, x, target=ns.Target(macs=macs / left))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = torchvision.models.mobilenet_v2().eval()
    x = torch.randn(1, 3, 224, 224)
    target = ns.Target(macs=0.5)
    plans = {
        "unpruned": base,
        "default (hw)": ns.prune(base, x, target=target),
        "round_to=16": ns.prune(base, x, target=target, round_to=16),
        "expansion only": expansion_only(base, x, 0.5),
        "4 blocks removed + default": depth_then_width(base, x, 4, 0.5),
    }
    base_macs, base_act = count_macs(base, x)[0], activation_volume(base, x)
    macs = {n: count_macs(m, x)[0] / base_macs for n, m in plans.items()}
    act = {n: activation_volume(m, x) / base_act for n, m in plans.items()}
    xcl = x.contiguous(memory_format=torch.channels_last)
    treatments = {"plain": lambda m: m, "BN folded": lambda m: ns.fold(m, x, convs=False)}
    treatments["folded + channels_last"] = lambda m: copy.deepcopy(ns.fold(m, x, convs=False)).to(
        memory_format=torch.channels_last
    )
    models = {
        (p, t): (fn(m).eval(), xcl if "channels" in t else x)
        for p, m in plans.items()
        for t, fn in treatments.items()
    }
    cal0 = print_calibration("before")
    times: dict[tuple[str, str], list[float]] = {k: [] for k in models}
    with torch.no_grad():
        keys = list(models)
        for r in range(args.rounds):  # alternating: a machine that slows down slows every model alike;
            for key in keys[r % len(keys) :] + keys[: r % len(keys)]:  # rotated: no model always first
                m, xi = models[key]
                times[key].append(median_time_ms(lambda m=m, xi=xi: m(xi), args.runs, 2, "thread"))
    cal1 = print_calibration("after")
    ms = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for p in plans:
        cells = []
        for t in treatments:
            ratio = ms[("unpruned", t)] / ms[(p, t)] * macs[p]
            cells += [f"{ms[(p, t)]:.2f}", f"{ratio:.2f}"]
        rows.append((p, f"{macs[p]:.3f}", f"{act[p]:.3f}", *cells))
    header = ("plan", "MACs", "activations")
    for t in treatments:
        header += (f"{t} ms", "ratio")
    table(
        f"MobileNetV2 eager, b1, 1 thread, median of {args.rounds} alternating rounds x {args.runs} "
        f"(calibration {cal0.matmul_gflops:.0f}/{cal1.matmul_gflops:.0f} GFLOP/s); ratio = speed-up / "
        "MACs reduction against the unpruned model with the same treatment",
        header,
        rows,
    )
    kept = [p for p in plans if "blocks" not in p]  # every layer kept: the fit's premise
    a = np.array([[1.0, macs[p], act[p]] for p in kept])
    y = np.array([ms[(p, "plain")] for p in kept])
    fixed, per_mac, per_act = np.linalg.lstsq(a, y, rcond=None)[0]
    ceiling = y[0] / (fixed + 0.5 * per_mac + 0.5 * per_act) * 0.5
    print(
        f"\nfit (plain): ms = {fixed:.2f} fixed + {per_mac:.2f} x MACs + {per_act:.2f} x activations "
        f"(unpruned {y[0]:.2f} ms; residuals {np.round(y - a @ [fixed, per_mac, per_act], 2).tolist()})"
    )
    print(f"ceiling at 0.5x MACs with activations also at 0.5x (every layer kept): ratio {ceiling:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
