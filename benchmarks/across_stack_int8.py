"""int8 on the fastest path: ResNet-50 pruned to 0.5x MACs, then int8 on ONNX Runtime, OpenVINO (NNCF) and
PyTorch PT2E (x86 inductor quantizer, run under torch.compile); our ONNX Runtime int8 vs NNCF's side by side.

Bars (issue 19, section 5), one thread, median of alternating rounds, CPU calibration printed beside:
  ResNet-50 (224 px) pruned to 0.5x MACs with the default ns.prune, then int8 on the fastest runtime:
    >= 3.5x faster than the unpruned float model on PyTorch eager, and
    >= 2x faster than the unpruned float model on that same runtime.
  Our int8 (ONNX Runtime) vs NNCF/OpenVINO's on the same model and calibration: latency and accuracy.

ResNet-50 has random weights (latency only; calibration on 4 batches of 2 random images). Accuracy is
compared on a small real task: LeNet-5 trained on mnist5k, int8 on each runtime from the same 8 training
batches, test accuracy. Each part stays under 20 minutes on a 2-core shared machine.

    PYTHONPATH=src python benchmarks/across_stack_int8.py [--parts resnet50,accuracy]
Exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from _tables import FAILURES, bar, table

import netsculpt as ns
from netsculpt.allocate import Target
from netsculpt.measure import count_macs
from netsculpt.runtimes import get_runtime
from netsculpt.runtimes.artefacts import timing_runtime
from netsculpt.weights.int8_select import quantize_on

FLOAT_RUNTIMES = ("torch", "compile", "onnxruntime", "openvino")
INT8 = {
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "compile": "torch",
}  # timing runtime -> int8 path
ROUNDS, PER_ROUND = 3, 5


def alternate(calls: dict[str, object]) -> dict[str, float]:
    """Median ms of each prepared call, in ROUNDS alternating rounds of PER_ROUND calls each."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(ROUNDS):
        for name, p in calls.items():
            for _ in range(PER_ROUND):
                start = time.perf_counter()
                p.call()
                times[name].append((time.perf_counter() - start) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def resnet50_part() -> None:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval()
    x = torch.randn(1, 3, 224, 224)
    t0 = time.perf_counter()
    pruned = ns.prune(model, x, target=Target(macs=0.5)).eval()
    macs0, macs1 = count_macs(model, x)[0], count_macs(pruned, x)[0]
    print(
        f"default ns.prune to 0.5x MACs: {macs1 / macs0:.3f}x MACs in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    gen = torch.Generator().manual_seed(1)
    calibration = [torch.randn(2, 3, 224, 224, generator=gen) for _ in range(4)]
    prepared, notes, sizes = {}, [], {}
    with tempfile.TemporaryDirectory(prefix="across-stack-") as tmp:
        for runtime in FLOAT_RUNTIMES:
            t0 = time.perf_counter()
            prepared[f"float {runtime}"] = get_runtime(runtime).prepare(model, (x,), 1)
            notes.append(f"float {runtime}: prepared in {time.perf_counter() - t0:.0f} s")
            print(notes[-1], flush=True)
        for runtime, path in INT8.items():
            t0 = time.perf_counter()
            try:
                q = quantize_on(path, pruned, x, calibration, Path(tmp) / path)
                prepared[f"int8 {runtime}"] = get_runtime(timing_runtime(q)).prepare(q, (x,), 1)
                sizes[runtime] = q.size_bytes
                notes.append(
                    f"int8 {path} (pruned): {q.size_bytes / 2**20:.1f} MiB, {time.perf_counter() - t0:.0f} s"
                )
            except Exception as exc:  # a path that fails is reported, the others still run
                notes.append(f"int8 {path}: FAILED {type(exc).__name__}: {str(exc)[:200]}")
            print(notes[-1], flush=True)
        cal0 = print_calibration("before timing")
        ms = alternate(prepared)
        cal1 = print_calibration("after timing")
        for p in prepared.values():
            p.close()
    eager = ms["float torch"]
    rows = []
    for runtime in FLOAT_RUNTIMES:
        f, q = ms.get(f"float {runtime}"), ms.get(f"int8 {runtime}")
        rows.append(
            (
                runtime,
                f"{f:.1f}",
                f"{q:.1f}" if q else "-",
                f"{eager / f:.2f}x",
                f"{eager / q:.2f}x" if q else "-",
                f"{f / q:.2f}x" if q else "-",
                f"{sizes[runtime] / 2**20:.1f} MiB" if runtime in sizes else "-",
            )
        )
    table(
        f"ResNet-50 224 px, 1 thread, b1, median of {ROUNDS} alternating rounds x {PER_ROUND} "
        f"(calibration {cal0.matmul_gflops:.0f}/{cal1.matmul_gflops:.0f} GFLOP/s)",
        (
            "runtime",
            "float ms",
            "pruned int8 ms",
            "float vs eager",
            "int8 vs eager float",
            "int8 vs same-rt float",
            "int8 file",
        ),
        rows,
    )
    int8 = {r: ms[f"int8 {r}"] for r in INT8 if f"int8 {r}" in ms}
    if not int8:
        print(bar(False, "no int8 path ran"))
        return
    best = min(int8, key=int8.get)
    print(
        bar(
            eager / int8[best] >= 3.5,
            f"fastest int8 ({best}) {eager / int8[best]:.2f}x vs eager float (>= 3.5x)",
        )
    )
    same = ms[f"float {best}"] / int8[best]
    print(bar(same >= 2.0, f"fastest int8 ({best}) {same:.2f}x vs float on {best} (>= 2x)"))
    if "onnxruntime" in int8 and "openvino" in int8:
        ours, theirs = int8["onnxruntime"], int8["openvino"]
        print(
            f"ours (ONNX Runtime int8) {ours:.1f} ms vs NNCF/OpenVINO int8 {theirs:.1f} ms: "
            f"{ours / theirs:.2f}x"
        )


def accuracy_part() -> None:
    from netsculpt.data import make_loaders
    from netsculpt.train import TrainConfig, evaluate, train
    from netsculpt.weights.int8_select import compare_int8

    config = TrainConfig.preset("lenet5_mnist5k")
    torch.manual_seed(config.seed)
    model = ns.create_model("lenet5", num_classes=10, in_channels=1)
    tl, te = make_loaders("mnist5k", batch_size=config.batch_size, augment=config.augment, seed=config.seed)
    t0 = time.perf_counter()
    train(model, tl, te, config)
    model.eval()
    print(f"LeNet-5 trained in {time.perf_counter() - t0:.0f} s", flush=True)
    plain, _ = make_loaders("mnist5k", batch_size=64, seed=0)
    cal0 = print_calibration("before")
    with tempfile.TemporaryDirectory() as tmp:
        models, rows, _ = compare_int8(model, torch.randn(1, 1, 28, 28), plain, tmp, calib_batches=8, runs=60)
        float_acc = evaluate(model, te)[0]
        out = []
        for r in rows:
            if "error" in r:
                out.append((r["runtime"], "-", "-", "-", r["error"][:60]))
                continue
            acc = evaluate(models[r["runtime"]], te)[0]
            change = f"{acc:.2%} ({100 * (acc - float_acc):+.2f} pp)"
            out.append(
                (
                    r["runtime"],
                    change,
                    f"{r['size_bytes'] / 1024:.0f} KiB",
                    f"{r['latency_ms']:.3f}",
                    f"{r['speedup_vs_float_eager']:.2f}x",
                )
            )
    cal1 = print_calibration("after")
    table(
        f"LeNet-5 / mnist5k int8, same 8 calibration batches; float {float_acc:.2%} "
        f"(calibration {cal0.matmul_gflops:.0f}/{cal1.matmul_gflops:.0f} GFLOP/s)",
        ("int8 path", "test accuracy", "file", "ms b1 1 thread", "vs float eager"),
        out,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="resnet50,accuracy")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = {"resnet50": resnet50_part, "accuracy": accuracy_part}
    for part in args.parts.split(","):
        parts[part]()
    if FAILURES:
        print("\nmissed bars:\n  " + "\n  ".join(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
