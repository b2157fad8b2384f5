"""What the latency-minded plans cost in accuracy: ``strategy="fast"`` and depth removal vs ``global``.

``strategy="fast"`` (activation-priced global ranking) and removing whole blocks make MobileNetV2 at 0.5x
MACs faster on eager PyTorch than the importance-only ``global`` plan (``across_stack.py``,
``across_stack_eager.py``), by cutting more where activations are big. This prices that in accuracy on a
task: MobileNetV2 (CIFAR strides, ``mobilenetv2_cifar``) trained on mnist5k at 32x32, 3 channels, then
pruned to 0.5x MACs with l1 by

- ``global`` (the importance-only ranking), round_to="hw";
- ``fast`` (the same ranking, each score divided by the square root of the channel's activation share);
- ``4 blocks + global`` / ``+ fast``: 4 residual blocks removed (``ns.prune_depth``, output change on
  held-out *training* images), then ``global`` / ``fast`` to 0.5x MACs of the original;

each measured right after pruning (no training) and after the same fine-tune budget for ``--seeds``
seeds, beside MACs and activation volume. Nothing is chosen on the test split: the strategies' settings
were fixed from latency alone.

``--part adapted`` prices the plans without training: BatchNorm statistics re-estimated on held-out
training batches, then test accuracy, at 0.7x and 0.5x MACs.

    PYTHONPATH=src:benchmarks python benchmarks/across_stack_accuracy.py --part baseline|compare|adapted
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
from _tables import table

import netsculpt as ns
from netsculpt.allocate.activations import activation_fraction, activation_weights
from netsculpt.graph import trace
from netsculpt.measure.macs import count_macs
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate, train

NAME = "mobilenetv2_cifar"


def _loaders(args: argparse.Namespace):
    return holdout_loaders(
        "mnist5k", val_size=args.val_size, batch_size=64, limit=args.limit, resize=32, channels=3
    )


def part_baseline(args: argparse.Namespace) -> None:
    train_l, _, test_l = _loaders(args)
    torch.manual_seed(0)
    model = ns.create_model(NAME, num_classes=10)
    start = time.perf_counter()
    result = train(model, train_l, test_l, TrainConfig(epochs=args.epochs, lr=0.05, seed=0))
    print(f"{NAME} baseline: test {result.final_acc:.2%} in {time.perf_counter() - start:.0f} s", flush=True)
    ns.save(model, args.cache / NAME, extra={"input_shape": [1, 3, 32, 32]})


def plans(
    base: torch.nn.Module, x: torch.Tensor, held: object, macs: float = 0.5
) -> dict[str, tuple[torch.nn.Module, float]]:
    """Each plan's model and its activation volume (fraction of the unpruned model's, from the graph)."""
    target = ns.Target(macs=macs)
    out = {}
    for strategy in ("global", "fast"):
        plan, graph = ns.plan_pruning(base, x, target=target, strategy=strategy)
        out[strategy] = (ns.apply_plan(base, plan, x, graph=graph), activation_fraction(graph, plan.keep))
    shallow = ns.prune_depth(base, x, blocks=4, data=held)
    left = count_macs(shallow, x)[0] / count_macs(base, x)[0]
    _, total = activation_weights(trace(base, x))
    for strategy in ("global", "fast"):
        deep = ns.prune(shallow, x, target=ns.Target(macs=macs / left), strategy=strategy)
        out[f"4 blocks + {strategy}"] = (deep, activation_weights(trace(deep, x))[1] / total)
    return out


def part_compare(args: argparse.Namespace) -> None:
    base = ns.load(args.cache / NAME).eval()
    x = torch.randn(1, 3, 32, 32)
    train_l, held, test_l = _loaders(args)
    base_macs = count_macs(base, x)[0]
    base_acc = evaluate(base, test_l)[0]
    rows = [("unpruned", "1.000", "1.000", f"{base_acc:.2%}", "-")]
    for name, (model, act) in plans(base, x, held).items():
        before = evaluate(model, test_l)[0]
        accs = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            student = copy.deepcopy(model)
            result = train(student, train_l, test_l, TrainConfig(epochs=args.ft_epochs, lr=0.02, seed=seed))
            accs.append(result.final_acc)
            print(f"  {name} seed {seed}: {before:.2%} before, {result.final_acc:.2%} after", flush=True)
        after = f"{statistics.mean(accs):.2%}" + (
            f" ± {statistics.pstdev(accs):.2%}" if len(accs) > 1 else ""
        )
        macs = count_macs(model, x)[0] / base_macs
        rows.append((name, f"{macs:.3f}", f"{act:.3f}", f"{before:.2%}", after))
    table(
        f"{NAME} on mnist5k (32x32), l1 to 0.5x MACs: test accuracy before / after {args.ft_epochs} "
        f"fine-tune epochs ({args.seeds} seeds); baseline {args.epochs} epochs on {args.limit} images",
        ("plan", "MACs", "activations", "acc, no fine-tune", "acc, fine-tuned"),
        rows,
    )


def part_adapted(args: argparse.Namespace) -> None:
    """No training: each plan's BatchNorm statistics re-estimated on 8 held-out *training* batches
    (what the width search scores candidates by), then test accuracy; at 0.5x and 0.7x MACs."""
    from netsculpt.search.evaluator import adapt_batchnorm_

    base = ns.load(args.cache / NAME).eval()
    x = torch.randn(1, 3, 32, 32)
    _, held, test_l = _loaders(args)
    batches = [b[0] for _, b in zip(range(8), held, strict=False)]
    rows = [("unpruned", "1.000", "1.000", f"{evaluate(base, test_l)[0]:.2%}")]
    for macs in (0.7, 0.5):
        for name, (model, act) in plans(base, x, held, macs).items():
            adapt_batchnorm_(model, batches)
            acc = evaluate(model, test_l)[0]
            got = count_macs(model, x)[0] / count_macs(base, x)[0]
            rows.append((f"{name} @ {macs}", f"{got:.3f}", f"{act:.3f}", f"{acc:.2%}"))
            print(f"  {name} @ {macs}: {acc:.2%}", flush=True)
    table(
        f"{NAME} on mnist5k (32x32), l1, no training, BatchNorm re-estimated on 8 held-out training batches",
        ("plan", "MACs", "activations", "test acc"),
        rows,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=("baseline", "compare", "adapted"), required=True)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/netsculpt_accuracy_cache"))
    parser.add_argument("--limit", type=int, default=3000)
    parser.add_argument("--val-size", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--ft-epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"baseline": part_baseline, "compare": part_compare, "adapted": part_adapted}[args.part](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
