"""Listing commands: `netsculpt models`, `netsculpt data`, `netsculpt criteria`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list zoo models")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'resnet*'")
    p.set_defaults(
        func=lambda a: _print(__import__("netsculpt.models", fromlist=["x"]).list_models(a.pattern))
    )
    p = sub.add_parser("data", help="list datasets")
    p.set_defaults(func=lambda a: _print(__import__("netsculpt.data", fromlist=["x"]).list_datasets()))
    p = sub.add_parser("criteria", help="list channel importance criteria")
    p.set_defaults(func=lambda a: _print(__import__("netsculpt.importance", fromlist=["x"]).list_criteria()))


def _print(names: list[str]) -> int:
    print("\n".join(names))
    return 0
