"""`netsculpt report RUN_DIR` rewrites RUN_DIR/report.html; `netsculpt report A B --out DIR` compares runs."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write RUN_DIR/report.html from results.json, or compare several runs on shared plots",
        description="One RUN_DIR: (re)write RUN_DIR/report.html (or --out FILE/DIR). Several RUN_DIRs: write "
        "a comparison report into --out DIR, each run in its own colour with its own Pareto front.",
    )
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run directories holding results.json")
    p.add_argument("--out", default=None, help="where to write (required when comparing runs)")
    p.add_argument("--schema", action="store_true", help="print the JSON schema of results.json and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netsculpt.errors import ConfigError
    from netsculpt.report import json_schema, write_comparison, write_report

    if args.schema:
        print(json.dumps(json_schema(), indent=2))
        return 0
    if not args.runs:
        raise ConfigError("give a run directory: `netsculpt report RUN_DIR` (or several with --out DIR)")
    if len(args.runs) == 1:
        path = write_report(args.runs[0], out=args.out)
    else:
        if args.out is None:
            raise ConfigError(
                f"comparing {len(args.runs)} runs needs --out DIR for the comparison report "
                "(each run keeps its own RUN_DIR/report.html)"
            )
        path = write_comparison(args.runs, args.out)
    print(f"report: {path}")
    return 0
