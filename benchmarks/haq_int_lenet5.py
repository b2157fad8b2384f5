"""int4 vs int8 weights per layer under a byte budget (issue 18 §2), LeNet-5 on mnist5k.

The float LeNet-5 is the HAQ part's (trained on the mnist5k training digits minus 500 held out; cached
in ``--cache``). The search (agent and GA, :class:`netsculpt.weights.int_space.IntSpace`) scores
fake-quantized candidates on those 500; the test split only gives the final numbers, through the real
ONNX Runtime export. Budget: packed quantized weight bytes halfway between all-int4 and all-int8.

    PYTHONPATH=src python benchmarks/haq_int_lenet5.py [--episodes 20] [--cache runs/bench/search]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from _haq_bench import _lenet

from netsculpt.search.evaluator import take_batches
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import evaluate
from netsculpt.weights.haq import BitSearchConfig, search_bits
from netsculpt.weights.int_space import IntSpace, export_int_bits, onnx_weight_bytes

RESULTS = Path("benchmarks/results/haq_int_lenet5.txt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--cache", default="runs/bench/search")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start_cal = print_calibration("start")
    train_loader, held, test_loader = holdout_loaders(
        "mnist5k", val_size=500, batch_size=64, eval_batch_size=125
    )
    base = _lenet(Path(args.cache), train_loader, test_loader)
    x = next(iter(test_loader))[0][:1]
    space = IntSpace(base)
    held_batches = take_batches(held, 4, "held-out")
    low, high = space.nbytes([4] * len(space)), space.nbytes([8] * len(space))
    budget = (low + high) // 2
    lines = [f"float LeNet-5: test {evaluate(base, test_loader)[0]:.2%}; layers {space.names}",
             f"budget: packed int weight bytes {budget:,} (all-int4 {low:,}, all-int8 {high:,})"]  # fmt: skip
    runs: list[tuple[str, dict[str, int], float]] = [
        ("all int8", {n: 8 for n in space.names}, 0.0),
        ("all int4", {n: 4 for n in space.names}, 0.0),
    ]
    for method in ("agent", "genetic"):
        start = time.perf_counter()
        config = BitSearchConfig(method=method, episodes=args.episodes, warmup=max(1, args.episodes // 4),
                                 pop_size=8, generations=4, seed=0)  # fmt: skip
        result = search_bits(space, budget, held_batches, config)
        runs.append((f"{method} @ budget", result.bits, time.perf_counter() - start))
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, bits, seconds) in enumerate(runs):
            model = export_int_bits(base, bits, x, train_loader, Path(tmp) / str(k))
            weight_bytes = sum(onnx_weight_bytes(model.path, base).values())
            predicted = space.nbytes([bits[n] for n in space.names])
            acc = evaluate(model, test_loader)[0]
            held_acc = space.evaluate([bits[n] for n in space.names], held_batches)[0]
            lines.append(
                f"{label}: test {acc:.2%} (held-out fake-quant {held_acc:.2%}); weight bytes predicted "
                f"{predicted:,} / in the .onnx {weight_bytes:,}; .onnx file {model.size_bytes:,} B; "
                f"bits {bits}; search {seconds:.0f} s"
            )
            print(lines[-1], flush=True)
    lines.append(f"calibration: {start_cal} | {print_calibration('end')}")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
