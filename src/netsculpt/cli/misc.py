"""Listing commands: `netsculpt models`, `netsculpt data`, `netsculpt criteria`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list zoo models")
    p.add_argument(
        "pattern",
        nargs="?",
        default=None,
        help="shell-style filter, e.g. 'resnet*' (the zoo), 'torchvision:res*' or 'timm:*' (those libraries)",
    )
    p.set_defaults(func=_models)
    p = sub.add_parser("data", help="list datasets")
    p.set_defaults(func=lambda a: _print(__import__("netsculpt.data", fromlist=["x"]).list_datasets()))
    p = sub.add_parser("criteria", help="list channel importance criteria")
    p.set_defaults(func=lambda a: _print(__import__("netsculpt.importance", fromlist=["x"]).list_criteria()))


def _print(names: list[str]) -> int:
    print("\n".join(names))
    return 0


def _models(args: argparse.Namespace) -> int:
    """Zoo names; a prefixed pattern (``torchvision:res*``) lists that library's models (it printed none)."""
    from netsculpt.models import list_models

    return _print(list_models(args.pattern, include_external=":" in (args.pattern or "")))
