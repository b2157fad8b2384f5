"""Depth compression: width-only vs depth-only vs compound at <= 0.5x MACs, triage, folding.

Parts (each < 20 min on one thread of the shared 2-core dev machine; results printed, calibration beside
every timing table):

- ``baseline``: train resnet56_cifar on mnist5k (32x32, 3 channels, ``--limit`` training images) and
  cache it under ``--cache``.
- ``compare``: from the cached baseline, three models at <= 0.5x MACs — width-only (``l1`` global MACs
  target), depth-only (block removal, block output change on held-out training images) and compound
  (depth x width x resolution) — each fine-tuned with the same KD budget for ``--seeds`` seeds. Prints
  accuracy, MACs, params and batch-1 latency (PyTorch and ONNX Runtime, one thread, measured side by side,
  interleaved). Bars: depth or compound >= 1.3x faster than width-only, accuracy within 0.5 pp of it.
- ``triage``: resnet20_cifar (trained briefly) triage table, blocks collapsed one at a time.
- ``fold``: conv-BN-ReLU ResNet-18 (torchvision) folded: max output difference and measured speed-up.

    PYTHONPATH=src python benchmarks/depth.py --part baseline|compare|triage|fold [--cache DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from _tables import FAILURES, bar, table

import netsculpt as ns
from netsculpt.depth.compound import compound_scale
from netsculpt.measure.latency import measure_latency
from netsculpt.measure.macs import count_macs, count_params
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import DistillConfig, TrainConfig, distill, evaluate, train

KD = DistillConfig(temperature=4.0, alpha=0.9)
DATA = {"resize": 32, "channels": 3}


def _loaders(args: argparse.Namespace, resize: int = 32):
    return holdout_loaders(
        "mnist5k", val_size=args.val_size, batch_size=64, limit=args.limit, resize=resize, channels=3
    )


def part_baseline(args: argparse.Namespace) -> None:
    train_l, _, test_l = _loaders(args)
    torch.manual_seed(0)
    model = ns.create_model("resnet56_cifar", num_classes=10)
    start = time.perf_counter()
    result = train(model, train_l, test_l, TrainConfig(epochs=args.epochs, lr=0.05, seed=0))
    print(f"resnet56_cifar baseline: test {result.final_acc:.2%} in {time.perf_counter() - start:.0f} s")
    ns.save(model, args.cache / "resnet56", extra={"input_shape": [1, 3, 32, 32]})


def _latencies(
    models: dict[str, tuple[torch.nn.Module, int]], rounds: int = 3
) -> dict[str, tuple[float, float]]:
    """Median of ``rounds`` interleaved measurements per model: PyTorch and ONNX Runtime, batch 1."""
    torch_ms: dict[str, list[float]] = {k: [] for k in models}
    ort_ms: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(rounds):
        for name, (model, res) in models.items():
            x = torch.randn(1, 3, res, res)
            torch_ms[name].append(measure_latency(model, x, runs=30))
            ort_ms[name].append(measure_latency(model, x, runs=30, runtime="onnxruntime"))
    return {k: (statistics.median(torch_ms[k]), statistics.median(ort_ms[k])) for k in models}


def part_compare(args: argparse.Namespace) -> None:
    teacher = ns.load(args.cache / "resnet56").eval()
    x = torch.randn(1, 3, 32, 32)
    _, held, _ = _loaders(args)
    base_macs = count_macs(teacher, x)[0]
    start = time.perf_counter()
    width = ns.prune(teacher, x, criterion="l1", target=ns.Target(macs=0.5))
    depth = ns.prune_depth(teacher, x, target=ns.Target(macs=0.5), data=held)
    comp = compound_scale(teacher, x, target=ns.Target(macs=0.5), data=held)
    print(
        f"planned three models in {time.perf_counter() - start:.0f} s; compound picked resolution "
        f"{comp.resolution}, depth {comp.depth:.2f}, width MACs {comp.width:.2f}, removed {comp.removed}"
    )
    shapes = {"width-only": (width, 32), "depth-only": (depth, 32), "compound": (comp.model, comp.resolution)}
    base_acc = evaluate(teacher, _loaders(args)[2])[0]
    accs: dict[str, list[float]] = {k: [] for k in shapes}
    for name, (model, res) in shapes.items():
        train_l, _, test_l = _loaders(args, res)
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            student = _copy(model)
            config = TrainConfig(epochs=args.ft_epochs, lr=0.02, seed=seed)
            result = distill(student, teacher, train_l, test_l, config, KD)
            accs[name].append(result.final_acc)
            print(f"  {name} seed {seed}: {result.final_acc:.2%}", flush=True)
    print_calibration("before latency")
    lat = _latencies(shapes)
    print_calibration("after latency")
    rows = [("unpruned", f"{base_acc:.2%}", "1.000", count_params(teacher), "-", "-")]
    for name, (model, res) in shapes.items():
        xi = torch.randn(1, 3, res, res)
        acc = accs[name]
        rows.append(
            (
                f"{name} ({res}x{res})",
                f"{statistics.mean(acc):.2%} ± {statistics.pstdev(acc):.2%}",
                f"{count_macs(model, xi)[0] / base_macs:.3f}",
                count_params(model),
                f"{lat[name][0]:.2f}",
                f"{lat[name][1]:.2f}",
            )
        )
    table(
        f"resnet56_cifar on mnist5k, <= 0.5x MACs, KD {args.ft_epochs} epochs, {args.seeds} seeds",
        ("model", "test acc", "MACs", "params", "torch ms", "ORT ms"),
        rows,
    )
    w_acc = statistics.mean(accs["width-only"])
    for name in ("depth-only", "compound"):
        speed_t = lat["width-only"][0] / lat[name][0]
        speed_o = lat["width-only"][1] / lat[name][1]
        gap = (w_acc - statistics.mean(accs[name])) * 100
        print(
            bar(
                max(speed_t, speed_o) >= 1.3,
                f"{name}: {speed_t:.2f}x (torch), {speed_o:.2f}x (ORT) faster than width-only (bar 1.3x)",
            )
        )
        print(bar(gap <= 0.5, f"{name}: accuracy {gap:+.2f} pp below width-only (bar <= 0.5 pp)"))


def _copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def part_triage(args: argparse.Namespace) -> None:
    from netsculpt.depth.triage import TriageConfig, triage, write_triage

    train_l, held, test_l = _loaders(args)
    torch.manual_seed(0)
    model = ns.create_model("resnet20_cifar", num_classes=10)
    train(model, train_l, test_l, TrainConfig(epochs=args.epochs, lr=0.05, seed=0))
    start = time.perf_counter()
    config = TriageConfig(unit="block", inits=("distilled",), schemes=("layer",), steps=args.triage_steps)
    rows = triage(model, torch.randn(1, 3, 32, 32), train_l, held, config)
    paths = write_triage(rows, args.cache / "triage_resnet20")
    table(
        f"resnet20_cifar triage (held-out acc after collapse + {args.triage_steps} steps, "
        f"{time.perf_counter() - start:.0f} s)",
        ("block", "init", "train", "held-out acc", "drop (pp)"),
        [(r.unit, r.init, r.scheme, f"{r.accuracy:.2%}", f"{r.drop * 100:.1f}") for r in rows],
    )
    print("written:", *paths)


def part_fold(args: argparse.Namespace) -> None:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 224, 224)
    folded = ns.fold(model, x)
    with torch.no_grad():
        ref = model(x)
        diff = float((folded(x) - ref).abs().max())
    print_calibration("before latency")
    lat = _latencies({"conv-BN-ReLU": (model, 224), "folded": (folded, 224)})
    print_calibration("after latency")
    table(
        "torchvision resnet18, batch 1, 224x224, one thread",
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


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=["baseline", "compare", "triage", "fold"], required=True)
    p.add_argument("--cache", type=Path, default=Path("benchmarks/results/depth_cache"))
    p.add_argument("--limit", type=int, default=1500)
    p.add_argument("--val-size", type=int, default=300)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--ft-epochs", type=int, default=1)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--triage-steps", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(1)
    print_calibration(args.part)
    {"baseline": part_baseline, "compare": part_compare, "triage": part_triage, "fold": part_fold}[args.part](
        args
    )
    if FAILURES:
        print("missed bars:", *FAILURES, sep="\n  ")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
