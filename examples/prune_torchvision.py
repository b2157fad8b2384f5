"""Prune a torchvision model by half, check it is exact, and compare its cost before and after.

PYTHONPATH=src python examples/prune_torchvision.py [--model resnet18] [--ratio 0.5]
"""

from __future__ import annotations

import argparse

import torch

import netsculpt as ns
from netsculpt.surgery.verify import pruning_error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="any torchvision classification model")
    parser.add_argument("--ratio", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = ns.create_model(f"torchvision:{args.model}").eval()
    x = torch.randn(1, 3, 224, 224)
    plan, graph = ns.plan_pruning(model, x, criterion="l1", ratio=args.ratio)
    print(graph)
    print(f"pruned vs masked original, relative error: {pruning_error(model, graph, plan, x):.2e}")
    small = ns.apply_plan(model, plan, x, graph=graph)
    before, after = ns.measure(model, x, runs=10), ns.measure(small, x, runs=10)
    print(f"params {before.params:,} -> {after.params:,}; MACs {before.macs:,} -> {after.macs:,}")
    print(f"latency {before.latency_ms:.1f} ms -> {after.latency_ms:.1f} ms (batch 1, one thread)")


if __name__ == "__main__":
    main()
