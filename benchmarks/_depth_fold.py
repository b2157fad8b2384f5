"""Depth benchmark parts on latency and folding (split from depth.py): batch-1 timing of several models
side by side, DepthShrinker's merge and conv-BN folding of ResNet-18."""

from __future__ import annotations

import argparse

import torch
from _calibration import print_calibration
from _tables import bar, table

import netsculpt as ns
from netsculpt.measure.latency import measure_latency
from netsculpt.measure.macs import count_macs


def latencies(
    models: dict[str, tuple[torch.nn.Module, int]], rounds: int = 5
) -> dict[str, tuple[float, float]]:
    """Per model, PyTorch and ONNX Runtime batch-1 ms: ``rounds`` interleaved rounds of 30 runs, the fastest
    round's median kept (on the shared machine load only ever slows a round down; medians of rounds
    still swung several-fold under a load average of ~14)."""
    torch_ms: dict[str, list[float]] = {k: [] for k in models}
    ort_ms: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(rounds):
        for name, (model, res) in models.items():
            x = torch.randn(1, 3, res, res)
            torch_ms[name].append(measure_latency(model, x, runs=30))
            ort_ms[name].append(measure_latency(model, x, runs=30, runtime="onnxruntime"))
    return {k: (min(torch_ms[k]), min(ort_ms[k])) for k in models}


def part_shrink_merge(args: argparse.Namespace) -> None:
    """DepthShrinker's merge on mobilenetv2_cifar (random weights, randomised BN statistics: mechanics,
    exactness and latency only, no accuracy): both activations of every inverted residual dropped, then
    ``fold(grouped=True)`` (depthwise 3x3 -> 1x1 projection becomes one dense 3x3) against ``fold()``."""
    from netsculpt.depth.shrink import activations, drop_activations

    torch.manual_seed(0)
    model = ns.create_model("mobilenetv2_cifar", num_classes=10).eval()
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    x = torch.randn(1, 3, 32, 32)
    drops = [a for a in activations(model, x) if a.startswith("features.") and ".conv." in a]
    linear = drop_activations(model, drops).eval()
    plain = ns.fold(linear, x)
    merged = ns.fold(linear, x, grouped=True)
    with torch.no_grad():
        ref = linear(x)
        diff = float((merged(x) - ref).abs().max())
    base_macs = count_macs(ns.fold(model, x), x)[0]
    print_calibration("before latency")
    models = {"original, BN folded": (ns.fold(model, x), 32), "dropped, fold()": (plain, 32),
              "dropped, fold(grouped=True)": (merged, 32)}  # fmt: skip
    lat = latencies(models)
    print_calibration("after latency")
    table(
        f"mobilenetv2_cifar, {len(drops)} activations dropped, batch 1, 32x32, one thread",
        ("model", "convs", "MACs", "torch ms", "ORT ms"),
        [
            (
                k,
                sum(isinstance(m, torch.nn.Conv2d) for m in v[0].modules()),
                f"{count_macs(v[0], x)[0] / base_macs:.2f}",
                f"{lat[k][0]:.2f}",
                f"{lat[k][1]:.2f}",
            )
            for k, v in models.items()
        ],
    )
    print(bar(diff <= 1e-4 * max(1.0, float(ref.abs().max())), f"merge max difference {diff:.2e}"))


def part_fold(args: argparse.Namespace) -> None:
    """conv-BN-ReLU ResNet-18 (randomised BN statistics) folded: exactness and batch-1 speed-up at
    ``--fold-size`` (224: compute-bound, BN a few % of the time; 32: per-layer overhead shows)."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    size = args.fold_size
    x = torch.randn(1, 3, size, size)
    folded = ns.fold(model, x)
    with torch.no_grad():
        ref = model(x)
        diff = float((folded(x) - ref).abs().max())
    print_calibration("before latency")
    lat = latencies({"conv-BN-ReLU": (model, size), "folded": (folded, size)}, rounds=args.rounds)
    print_calibration("after latency")
    table(
        f"torchvision resnet18, batch 1, {size}x{size}, one thread, fastest of {args.rounds} rounds",
        ("model", "torch ms", "ORT ms"),
        [(k, f"{v[0]:.2f}", f"{v[1]:.2f}") for k, v in lat.items()],
    )
    print(
        bar(
            diff <= 1e-4 * max(1.0, float(ref.abs().max())),
            f"max output difference {diff:.2e} (logits up to {float(ref.abs().max()):.1f})",
        )
    )
    speed = lat["conv-BN-ReLU"][0] / lat["folded"][0]
    ort = lat["conv-BN-ReLU"][1] / lat["folded"][1]
    print(
        bar(
            speed > 1.0,
            f"folded is {speed:.2f}x faster in PyTorch eager, {ort:.2f}x in ORT",
        )
    )
