"""Do the latency-minded MobileNetV2 plans still cost accuracy after a short fine-tune?

``across_stack_accuracy.py`` priced ``strategy="fast"`` and depth removal with no training (BatchNorm
re-estimated only): ``"fast"`` lost most of the accuracy. Users fine-tune after pruning, so this prices
the same plans after the SAME short knowledge-distillation fine-tune from the unpruned model, on
mobilenetv2_cifar / mnist5k (32x32, 3 channels), scored on held-out *training* digits only (the test
split is never loaded for a decision). Plans, each to ``--macs`` of the unpruned MACs, l1 scores:

- ``global``: the default (``strategy="global"``, ``round_to="hw"``);
- ``fast``: each channel's score divided by sqrt of its activation share;
- ``fast p=0.25``: the softer price, share ** 0.25 (``activation_price(power=0.25)``, benchmark only);
- ``4 blocks + global`` / ``4 blocks + fast``: ``ns.prune_depth(blocks=4)`` first, then the width plan to
  ``--macs`` of the original.

Per plan: MACs, activation fraction, held-out accuracy with BatchNorm re-estimated (no training), and
after the fine-tune for each seed. Results go to a JSON file after every run (resume by re-running).

    PYTHONPATH=src:benchmarks python benchmarks/across_stack_finetune.py [--macs 0.5 0.7] [--seeds 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from _tables import table

import netsculpt as ns
import netsculpt.allocate.activations as acts
from netsculpt.allocate.activations import activation_weights
from netsculpt.graph import trace
from netsculpt.measure.macs import count_macs
from netsculpt.search.evaluator import adapt_batchnorm_
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate, train

NAME = "mobilenetv2_cifar"
PLANS = ("global", "fast", "fast p=0.25", "4 blocks + global", "4 blocks + fast")


def _loaders(args: argparse.Namespace, order_seed: int = 0):
    return holdout_loaders(
        "mnist5k", val_size=args.val_size, batch_size=64, seed=0, order_seed=order_seed, resize=32, channels=3
    )


def base_model(args: argparse.Namespace) -> torch.nn.Module:
    """Train once (``--epochs`` on the training split minus the held-out digits) and cache."""
    path = args.cache / "base"
    if path.exists():
        return ns.load(path).eval()
    train_l, held, _ = _loaders(args)
    torch.manual_seed(0)
    model = ns.create_model(NAME, num_classes=10)
    start = time.perf_counter()
    result = train(model, train_l, held, TrainConfig(epochs=args.epochs, lr=0.05, seed=0))
    took = time.perf_counter() - start
    print(f"base: held-out {result.final_acc:.2%} after {args.epochs} epochs, {took:.0f} s")
    ns.save(model, path, extra={"input_shape": [1, 3, 32, 32]})
    return model.eval()


def _width(model: torch.nn.Module, x: torch.Tensor, macs: float, strategy: str) -> torch.nn.Module:
    if strategy == "fast p=0.25":
        original = acts.activation_price
        acts.activation_price = partial(original, power=0.25)  # read at call time by target_plan
        try:
            return ns.prune(model, x, target=ns.Target(macs=macs), strategy="fast")
        finally:
            acts.activation_price = original
    return ns.prune(model, x, target=ns.Target(macs=macs), strategy=strategy)


def make_plan(
    base: torch.nn.Module, x: torch.Tensor, name: str, macs: float, calib_pairs: list
) -> torch.nn.Module:
    if not name.startswith("4 blocks"):
        return _width(base, x, macs, name)
    shallow = ns.prune_depth(base, x, blocks=4, data=calib_pairs)
    left = count_macs(shallow, x)[0] / count_macs(base, x)[0]
    return _width(shallow, x, macs / left, name.split(" + ")[1])


def finetune(student, teacher, loader, steps: int, lr: float, temperature: float = 4.0) -> None:
    """KD + CE (equal weights), SGD with Nesterov momentum, cosine over ``steps`` batches."""
    opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    student.train()
    teacher.eval()
    done = 0
    while done < steps:
        for images, labels in loader:
            with torch.no_grad():
                soft = F.softmax(teacher(images) / temperature, dim=1)
            logits = student(images)
            kd = F.kl_div(F.log_softmax(logits / temperature, dim=1), soft, reduction="batchmean")
            loss = 0.5 * kd * temperature**2 + 0.5 * F.cross_entropy(logits, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            done += 1
            if done >= steps:
                break
    student.eval()


def run(args: argparse.Namespace) -> None:
    store = args.cache / "results.json"
    res = json.loads(store.read_text()) if store.exists() else {}
    base = base_model(args)
    x = torch.randn(1, 3, 32, 32)
    train_l, held, _ = _loaders(args)
    pairs = [b for _, b in zip(range(8), train_l, strict=False)]  # training images, not held-out
    calib = [b[0] for b in pairs]
    res.setdefault("unpruned", evaluate(base, held)[0])
    base_macs = count_macs(base, x)[0]
    _, base_act = activation_weights(trace(base, x))
    for macs in args.macs:
        for name in PLANS:
            key = f"{macs}|{name}"
            entry = res.setdefault(key, {})
            if len(entry.get("after", {})) >= args.seeds:
                continue
            model = make_plan(base, x, name, macs, pairs)
            adapt_batchnorm_(model, calib)
            entry["macs"] = count_macs(model, x)[0] / base_macs
            entry["act"] = activation_weights(trace(model, x))[1] / base_act
            entry["before"] = evaluate(model, held)[0]
            entry.setdefault("after", {})
            for seed in range(args.seeds):
                if str(seed) in entry["after"]:
                    continue
                torch.manual_seed(seed)
                loader = _loaders(args, order_seed=seed + 1)[0]
                student = copy.deepcopy(model)
                start = time.perf_counter()
                finetune(student, base, loader, args.ft_steps, args.lr)
                entry["after"][str(seed)] = evaluate(student, held)[0]
                print(
                    f"  {key} seed {seed}: MACs {entry['macs']:.3f} act {entry['act']:.3f} "
                    f"before {entry['before']:.2%} after {entry['after'][str(seed)]:.2%} "
                    f"({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
                store.write_text(json.dumps(res, indent=1))
    report(res, args)


def report(res: dict, args: argparse.Namespace) -> None:
    rows = [("unpruned", "1.000", "1.000", f"{res['unpruned']:.2%}", "-", "-")]
    for key, e in res.items():
        if key == "unpruned" or not e.get("after"):
            continue
        accs = [e["after"][s] for s in sorted(e["after"])]
        rows.append(
            (
                key.replace("|", " @ "),
                f"{e['macs']:.3f}",
                f"{e['act']:.3f}",
                f"{e['before']:.2%}",
                " / ".join(f"{a:.2%}" for a in accs),
                f"{statistics.mean(accs):.2%}",
            )
        )
    table(
        f"{NAME} on mnist5k 32x32: held-out accuracy (BN re-estimated) and after {args.ft_steps} KD steps "
        f"of 64 images (lr {args.lr}), per seed",
        ("plan @ MACs", "MACs", "activations", "before FT", "after FT (seeds)", "mean"),
        rows,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=Path("/tmp/netsculpt_finetune_cache"))
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--macs", type=float, nargs="+", default=[0.5, 0.7])
    parser.add_argument("--ft-steps", type=int, default=48)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
