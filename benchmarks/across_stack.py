"""Pruned but still fast? torchvision ResNet-50 (224 px) and MobileNetV2 at 0.5x MACs, per runtime.

Variants, all l1, ``target=Target(macs=0.5)`` (global strategy) unless named: the default prune call
(``round_to="hw"``), ``strategy="fast"`` (the global ranking priced by activation volume, on the
``"hw"`` grid), ``round_to=1`` (exact counts, the old default), ``round_to=16``, ``round_to="auto"``
(measured on each runtime at each batch size, so one auto plan per column), and Torch-Pruning 1.6.1's
MetaPruner with uniform ``pruning_ratio=0.3`` (about 0.5x MACs; its MACs fraction is printed). Each is
timed through the runtime registry on PyTorch eager, ``torch.compile`` (inductor), ONNX Runtime and
OpenVINO at batch 1 and 8, one thread (thread CPU clock: every one of these computes on the calling
thread at one thread), as the median of 3 alternating rounds (every variant once per round), and
reported as speed-up / MACs reduction: 1.0 means the model got as much faster as it got cheaper. Random
init weights: latency only. A runtime that cannot run a variant prints why and shows ``n/a``.
``round_to="auto"`` builds a per-layer table on the runtime it serves; on ``compile`` that means
compiling every layer shape (minutes per model on one core), so ``--auto-runtimes`` limits where it runs
(default: eager, ONNX Runtime, OpenVINO) and the other columns show ``n/a`` for auto.

Bars (issue 19): ``round_to="auto"`` >= 0.9 on every runtime and batch; the default call >= 0.8.

    PYTHONPATH=src:benchmarks python benchmarks/across_stack.py --model resnet50 --batches 1 8
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision
from _calibration import print_calibration
from _tables import FAILURES, bar, table

import netsculpt as ns
from netsculpt.measure import count_macs
from netsculpt.measure.latency_model import median_time_ms

RUNTIMES = ("torch", "compile", "onnxruntime", "openvino")
AUTO_RUNTIMES = ("torch", "onnxruntime", "openvino")
# CPU time of the calling thread (one thread: torch and ONNX Runtime compute on it): a shared machine's
# preemptions do not inflate it, as they do wall time (wall-clock rounds here disagreed by up to 2x)
CLOCK = "thread"
MODELS = {"resnet50": torchvision.models.resnet50, "mobilenet_v2": torchvision.models.mobilenet_v2}


def tp_uniform(model: torch.nn.Module, x: torch.Tensor, ratio: float = 0.3) -> torch.nn.Module:
    """Torch-Pruning's uniform MetaPruner (l1 magnitude), classifier kept, as its README shows."""
    import copy

    import torch_pruning as tp

    m = copy.deepcopy(model)
    head = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    pruner = tp.pruner.MetaPruner(
        m, x, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=ratio, ignored_layers=head
    )
    pruner.step()
    return m


class Timer:
    """One runtime's call per model, prepared once by the runtime registry (exported, compiled,
    session created); ``why`` says why a runtime cannot run it (the column shows ``n/a``)."""

    def __init__(self, runtime: str, model: torch.nn.Module, x: torch.Tensor, threads: int):
        from netsculpt.runtimes import RuntimeUnsupported, get_runtime

        self.prepared, self.why = None, ""
        try:
            self.prepared = get_runtime(runtime).prepare(model.eval(), (x,), threads)
        except RuntimeUnsupported as exc:
            self.why = str(exc)

    def __call__(self, runs: int) -> float:
        if self.prepared is None:
            return float("nan")
        return median_time_ms(self.prepared.call, runs, 2, CLOCK)

    def close(self) -> None:
        if self.prepared is not None:
            self.prepared.close()


def cell(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=sorted(MODELS), default="resnet50")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=0, help="timed runs per round (0: 10 at b1, 4 at b8)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--auto-runtimes", nargs="*", default=list(AUTO_RUNTIMES))
    parser.add_argument("--skip-auto", action="store_true")
    parser.add_argument("--variants", nargs="*", help="time only these variants (default: all)")
    parser.add_argument(
        "--depth-blocks",
        type=int,
        default=0,
        help="also N blocks removed (ns.prune_depth), then global / fast",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch._dynamo.config.cache_size_limit = 64  # one compiled graph per variant, all alive in a column
    torch.manual_seed(0)
    base = MODELS[args.model]().eval()
    x1 = torch.randn(1, 3, 224, 224)
    base_macs = count_macs(base, x1)[0]
    print(f"{args.model}: {base_macs / 1e9:.2f} GMACs at 224 px, threads {args.threads}")
    print_calibration("before")
    t0 = time.perf_counter()
    target = ns.Target(macs=0.5)
    variants = {
        "default (hw)": ns.prune(base, x1, target=target),
        'strategy="fast"': ns.prune(base, x1, target=target, strategy="fast"),
        "round_to=1": ns.prune(base, x1, target=target, round_to=1),
        "round_to=16": ns.prune(base, x1, target=target, round_to=16),
    }
    try:  # an optional comparison: the benchmark runs without the package
        variants["Torch-Pruning 1.6.1 uniform 0.3"] = tp_uniform(base, x1)
    except ModuleNotFoundError as err:
        print(f"Torch-Pruning variant skipped: {err}")
    if args.depth_blocks:  # whole blocks gone first: their per-call costs go too (eager, OpenVINO b1)
        shallow = ns.prune_depth(base, x1, blocks=args.depth_blocks)
        left = count_macs(shallow, x1)[0] / base_macs
        names = []
        for how in ("global", "fast"):
            names.append(f"{args.depth_blocks} blocks + {how}")
            variants[names[-1]] = ns.prune(shallow, x1, target=ns.Target(macs=0.5 / left), strategy=how)
        args.variants = [*(args.variants or variants), *names]
    if args.variants:
        variants = {n: m for n, m in variants.items() if n in args.variants or n == "default (hw)"}
    print(f"pruned {len(variants)} variants in {time.perf_counter() - t0:.0f} s", flush=True)
    macs = {name: count_macs(m, x1)[0] / base_macs for name, m in variants.items()}
    columns = [(rt, b) for b in args.batches for rt in args.runtimes]
    ratios: dict[str, dict[tuple[str, int], float]] = {name: {} for name in [*variants, "auto"]}
    auto_info = {}
    for rt, b in columns:
        x = torch.randn(b, 3, 224, 224)
        models = dict(variants)
        if not args.skip_auto and rt in args.auto_runtimes:
            t0 = time.perf_counter()
            plan, graph = ns.plan_pruning(
                base, x, target=target, round_to="auto", runtime=rt, threads=args.threads
            )
            models["auto"] = ns.apply_plan(base, plan, x, graph=graph)
            macs["auto"] = count_macs(models["auto"], x1)[0] / base_macs
            auto_info[(rt, b)] = (plan.meta["auto"], time.perf_counter() - t0)
            info = plan.meta["auto"]
            took = time.perf_counter() - t0
            print(
                f"auto on {rt} b{b}: chose {info['chosen']} in {took:.0f} s, measured {info['measured_ms']}"
            )
        runs = args.runs or (10 if b == 1 else 4)
        timers = {"unpruned": Timer(rt, base, x, args.threads)}
        timers |= {n: Timer(rt, m, x, args.threads) for n, m in models.items()}
        for n, timer in timers.items():
            if timer.why:
                print(f"{rt} b{b} {n}: n/a, {timer.why}")
        times: dict[str, list[float]] = {n: [] for n in timers}
        for _ in range(args.rounds):  # alternating rounds: drift slows every variant alike
            for n, timer in timers.items():
                times[n].append(timer(runs))
        for timer in timers.values():
            timer.close()
        ms = {n: statistics.median(t) for n, t in times.items()}
        others = ", ".join(f"{n} {v:.2f} ms" for n, v in ms.items() if n != "unpruned")
        print(f"{rt} b{b}: unpruned {ms['unpruned']:.2f} ms; {others}", flush=True)
        for n in models:
            ratios[n][(rt, b)] = (ms["unpruned"] / ms[n]) * macs[n]
    header = ("variant", "MACs", *[f"{rt} b{b}" for rt, b in columns])
    rows = [(n, f"{macs[n]:.3f}", *[cell(ratios[n].get(c)) for c in columns]) for n in ratios if ratios[n]]
    table(f"{args.model} at 0.5x MACs: speed-up / MACs reduction (1.0 = the limit)", header, rows)
    print_calibration("after")
    for name, need in (("auto", 0.9), ("default (hw)", 0.8), ('strategy="fast"', 0.8)):
        if ratios.get(name):
            done = {c: v for c, v in ratios[name].items() if v == v}
            worst = min(done.values(), default=float("nan"))
            missing = [f"{rt} b{b}" for rt, b in columns if (rt, b) not in done]
            also = f"; not measured: {', '.join(missing)}" if missing else ""
            text = f"{args.model} {name} >= {need} on every column (worst {worst:.2f}{also})"
            print(bar(worst >= need and not missing, text))  # unmeasured columns: not shown to be met
    return 1 if FAILURES else 0


if __name__ == "__main__":
    raise SystemExit(main())
