"""The `netsculpt` command line: analyze, train, eval, prune, compress, and listings."""

from __future__ import annotations

import argparse
import os
import sys

from netsculpt.errors import NetsculptError

# Each command lives in its own module exposing ``register(subparsers)``; listed in help order.
COMMAND_MODULES = (
    "compress", "analyze", "train_cmd", "prune_cmd", "distill_cmd",
    "search_cmd", "weights_cmd", "adder_cmd", "sparsify_cmd", "report_cmd", "explain_cmd", "misc",
    "bench_cmd", "depth_cmd", "gpp_cmd",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    import importlib
    import importlib.util

    parser = argparse.ArgumentParser(
        prog="netsculpt", description="Make trained PyTorch CNNs smaller and faster, with measured proof."
    )
    add_global_options(parser, default_threads=_env_threads())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(f"netsculpt.cli.{name}") is not None:
            importlib.import_module(f"netsculpt.cli.{name}").register(sub)
    from netsculpt.cli.common import DefaultsFormatter

    for command in sub.choices.values():
        command.formatter_class = DefaultsFormatter  # every option's default in --help (docs/cli.md)
        if "--threads" in command._option_string_actions:  # bench: --threads is a list of counts to time
            command.add_argument(
                "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars"
            )
            continue
        # also after the command (`netsculpt compress --quiet`); SUPPRESS keeps the value given before it
        add_global_options(command, default_threads=argparse.SUPPRESS, default_quiet=argparse.SUPPRESS)
    return parser


def positive_threads(text: str) -> int:
    """``--threads N``: a whole number >= 1 (argparse prints the message and exits 2 otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _env_threads() -> int:
    """``$NETSCULPT_THREADS`` (default 1); a bad value is a one-line error, not a traceback."""
    text = os.environ.get("NETSCULPT_THREADS", "1")
    try:
        return positive_threads(text)
    except argparse.ArgumentTypeError as exc:
        print(f"netsculpt: error: NETSCULPT_THREADS {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def add_global_options(
    parser: argparse.ArgumentParser, *, default_threads: object, default_quiet: object = False
) -> None:
    """``--quiet`` and ``--threads``: on the top-level parser and on every command's parser."""
    parser.add_argument("--quiet", action="store_true", default=default_quiet, help="no progress bars")
    parser.add_argument(
        "--threads", type=positive_threads, default=default_threads,
        help="torch CPU threads (default 1, or $NETSCULPT_THREADS): one thread keeps timings reproducible "
        "on shared machines, where extra OpenMP threads can slow a forward pass by 10-100x",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    import torch

    torch.set_num_threads(args.threads)
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
    except BrokenPipeError:  # `netsculpt criteria | head -1`: the reader left; nothing more to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
