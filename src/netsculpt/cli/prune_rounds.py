"""`netsculpt prune --steps K`: ``ns.prune_iteratively`` from the command line.

Each round re-scores the channels of the model the previous round left (data criteria recalibrate on
``--data``), a line per round says where it landed, and the rounds' plans are composed into one
``plan.json`` of the *original* model, so ``netsculpt explain --baseline`` marks kept channels as after a
one-shot prune."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.surgery import PrunePlan


def add_steps_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="K",
        help="prune in K rounds, re-scoring the channels the previous round left, to the final --ratio / "
        "--ratio-for / --target-macs / --target-params (ns.prune_iteratively; docs/engine.md)",
    )


def check_steps(args: argparse.Namespace) -> None:
    """Refuse what has no schedule in rounds, before the model loads."""
    if args.steps is None:
        return
    if args.steps < 1:
        raise ConfigError(f"--steps takes a whole number of rounds >= 1 (1 prunes once); got {args.steps}")
    refused = {
        "--widths": (args.widths, "exact widths have no schedule: prune to them once, without --steps"),
        "--depth-blocks": (args.depth_blocks, "whole blocks are removed once: drop --steps"),
        "--target-latency": (
            args.target_latency,
            "rounds aim at MACs or parameter shares; use --target-macs / --target-params with --steps, "
            "or --target-latency without it",
        ),
    }
    for flag, (value, why) in refused.items():
        if value is not None:
            raise ConfigError(f"--steps does not go with {flag}: {why}")


def prune_in_rounds(
    model: nn.Module,
    x: Any,
    args: argparse.Namespace,
    goal: dict[str, Any],
    options: dict[str, Any],
    console: Console,
) -> tuple[nn.Module, PrunePlan | None]:
    """``model`` pruned in ``args.steps`` rounds to ``goal`` (``target=`` or ``ratios=``/``ratio=``), and
    the plan of the original that gives the same architecture (``None`` if the rounds' groups differ)."""
    from netsculpt.iterative import prune_iteratively
    from netsculpt.measure import count_macs

    macs0, params0 = count_macs(model, x)[0], _params(model)
    plans: list[PrunePlan] = []
    rounds: list[dict[str, Any]] = []

    def report(current: nn.Module, step: int, plan: PrunePlan | None) -> None:
        macs, params = count_macs(current, x)[0], _params(current)
        groups = len(plan.keep) if plan is not None else 0
        plans.extend([plan] if plan is not None else [])
        rounds.append({"macs": macs / macs0, "params": params / params0, "groups_pruned": groups})
        console.print(
            f"round {step}/{args.steps}: MACs {macs:,} ({macs / macs0:.3f}x), params {params:,} "
            f"({params / params0:.3f}x), {groups} groups pruned"
        )

    small = prune_iteratively(model, x, steps=args.steps, on_round=report, **goal, **options)
    plan = compose_plans(plans)
    if plan is not None:
        target = goal.get("target")
        plan.meta.update({"steps": args.steps, "rounds": rounds})
        plan.meta.update({"target": {target.metric: target.value}} if target is not None else {})
    return small, plan


def compose_plans(plans: list[PrunePlan]) -> PrunePlan | None:
    """One plan of the original model from the rounds' plans (each of the model the round before left):
    a group's kept indices are followed back through every round that pruned it. Group ids are the
    producing module's name, which pruning keeps; a round whose sizes do not chain gives ``None``."""
    keep: dict[str, list[int]] = {}
    sizes = dict(plans[0].sizes) if plans else {}  # every group of the original, as one-shot lists them
    for plan in plans:
        for gid, kept in plan.keep.items():
            before = keep.get(gid, list(range(plan.sizes[gid])))
            if len(before) != plan.sizes[gid]:
                return None
            sizes.setdefault(gid, plan.sizes[gid])
            keep[gid] = [before[i] for i in kept]
    meta = {k: v for k, v in plans[-1].meta.items() if k != "predicted"} if plans else {}
    return PrunePlan(keep, sizes, meta)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
