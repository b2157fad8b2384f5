"""`netsculpt prune --steps K`: ``ns.prune_iteratively`` from the command line.

Each round re-scores the channels of the model the previous round left (data criteria recalibrate on
``--data``), a line per round says where it landed, and the rounds' plans are composed into one
``plan.json`` of the *original* model, so ``netsculpt explain --baseline`` marks kept channels as after a
one-shot prune."""

from __future__ import annotations

import argparse
from collections.abc import Callable
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
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=None,
        metavar="E",
        help="with --steps and --data: train E epochs after each round, with the finetune preset (lr 0.01, "
        "cosine; dense_finetune for --task), so the next round scores a recovered network",
    )


def check_steps(args: argparse.Namespace) -> None:
    """Refuse what has no schedule in rounds, before the model loads."""
    epochs = args.finetune_epochs
    if epochs is not None and (args.steps is None or args.data is None or epochs < 1):
        raise ConfigError(
            "--finetune-epochs E trains E >= 1 epochs on --data between the rounds of --steps: pass "
            f"--steps K and --data NAME (got --finetune-epochs {epochs}, --steps {args.steps}, --data "
            f"{args.data}); to fine-tune after a one-shot prune run netsculpt distill"
        )
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
    if args.round_to == "auto" and args.target_macs is None and args.target_params is None:
        raise ConfigError(
            "--steps with a ratio plans each round by widths, which --round-to auto (one MACs target) does "
            "not round; pass --round-to hw or N, or give --target-macs / --target-params"
        )


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
    from netsculpt.iterative import compose_plans, prune_iteratively
    from netsculpt.measure import count_macs, count_params

    macs0, params0 = count_macs(model, x)[0], count_params(model)
    plans: list[PrunePlan] = []
    rounds: list[dict[str, Any]] = []

    def report(current: nn.Module, step: int, plan: PrunePlan | None) -> None:
        macs, params = count_macs(current, x)[0], count_params(current)
        groups = len(plan.keep) if plan is not None else 0
        plans.extend([plan] if plan is not None else [])
        rounds.append({"macs": macs / macs0, "params": params / params0, "groups_pruned": groups})
        console.print(
            f"round {step}/{args.steps}: MACs {macs:,} ({macs / macs0:.3f}x), params {params:,} "
            f"({params / params0:.3f}x), {groups} groups pruned"
        )

    finetune = finetuner(args, model, options.get("task"), console)
    small = prune_iteratively(
        model, x, steps=args.steps, on_round=report, finetune=finetune, **goal, **options
    )
    plan = compose_plans(plans)
    if plan is not None:
        target = goal.get("target")
        plan.meta.update({"steps": args.steps, "rounds": rounds, "finetune_epochs": args.finetune_epochs})
        plan.meta.update({"target": {target.metric: target.value}} if target is not None else {})
    return small, plan


def finetuner(
    args: argparse.Namespace, model: nn.Module, task: Any, console: Console
) -> Callable[[nn.Module, int], None] | None:
    """``--finetune-epochs``: ``netsculpt distill``'s preset and loaders (finetune; dense_finetune for a
    ``--task``) and the training loop, as ``prune_iteratively``'s ``finetune`` callback."""
    if args.finetune_epochs is None:
        return None
    from netsculpt.cli.common import check_fits_data
    from netsculpt.cli.train_cmd import loaders, preset_config
    from netsculpt.tasks.metrics import metric_label
    from netsculpt.train import train

    config = preset_config(
        argparse.Namespace(**vars(args), preset=None), "finetune", epochs="finetune_epochs"
    )
    if task is not None:
        from netsculpt.cli.task_data import dense_data

        dense = dense_data(args, batch_size=config.batch_size)
        train_loader, test_loader = dense.train_loader, dense.test_loader
    else:
        train_loader, test_loader = loaders(
            args, config.batch_size, config.augment, config.seed, config.augment_shift
        )
        check_fits_data(model, train_loader)  # before the first round, not in its training

    label = metric_label(task.metric) if task is not None else "accuracy"

    def finetune(model: nn.Module, step: int) -> None:
        result = train(model, train_loader, test_loader, config, task=task)
        done = f"fine-tuned {config.epochs} epoch(s), test {label} {result.final_acc:.2%}"
        console.print(f"round {step}/{args.steps}: {done}")

    return finetune
