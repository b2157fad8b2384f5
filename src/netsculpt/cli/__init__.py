"""The `netsculpt` command line: analyze, train, eval, prune, compress, and listings."""

from __future__ import annotations

import argparse
import os
import sys

from netsculpt.errors import NetsculptError


def build_parser() -> argparse.ArgumentParser:
    from netsculpt.cli import analyze, compress, misc, prune_cmd, train_cmd

    parser = argparse.ArgumentParser(
        prog="netsculpt", description="Make trained PyTorch CNNs smaller and faster, with measured proof."
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--threads", type=int, default=int(os.environ.get("NETSCULPT_THREADS", "1")),
        help="torch CPU threads (default 1, or $NETSCULPT_THREADS): one thread keeps timings reproducible "
        "on shared machines, where extra OpenMP threads can slow a forward pass by 10-100x",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (compress, analyze, train_cmd, prune_cmd, misc):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    import torch

    torch.set_num_threads(max(1, args.threads))
    if args.quiet:
        from netsculpt.progress import set_quiet

        set_quiet(True)
    try:
        return int(args.func(args) or 0)
    except NetsculptError as exc:
        print(f"netsculpt {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted; rerun the same command (with --resume where offered) to continue", file=sys.stderr
        )
        return 130
