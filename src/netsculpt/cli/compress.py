"""`netsculpt compress [RECIPE] --out RUN_DIR`: run a recipe (default: LeNet-5 on the bundled digits)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="run a recipe end to end (default: LeNet-5 on the bundled digits)")
    p.add_argument(
        "recipe", nargs="?", default=None, help="recipe YAML (default: examples/lenet5_mnist5k.yaml)"
    )
    p.add_argument("--out", default=None, help="run directory (default: runs/<recipe name>); rerun to resume")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a recipe field, e.g. --set data.limit=500 --set stages.1.distill.epochs=2",
    )
    p.add_argument(
        "--force", action="store_true", help="redo every stage even if the folder has finished ones"
    )
    p.add_argument(
        "--trust-builder",
        default=None,
        metavar="PKG.MOD:FN",
        help="a baseline checkpoint folder whose base netsculpt cannot build: the exact builder you allow",
    )
    p.add_argument(
        "--compare-random",
        action="store_true",
        help="also run the stages with a random criterion (same as --set compare_random=true), so the "
        "summary shows whether the criterion mattered",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from netsculpt.pipeline import default_recipe_path, load_recipe, print_summary, run_recipe
    from netsculpt.pipeline.recipe_change import with_overrides

    if args.compare_random:
        args.overrides = [*args.overrides, "compare_random=true"]
    path = Path(args.recipe) if args.recipe else default_recipe_path()
    recipe, text = load_recipe(path, args.overrides)
    text = with_overrides(text, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / recipe.name
    results = run_recipe(recipe, text, out, force=args.force, trust_builder=args.trust_builder)
    print_summary(results)
    print(
        f"results: {out / 'results.json'}"
        + (f" · report: {out / 'report.html'}" if (out / "report.html").is_file() else "")
    )
    return 0
