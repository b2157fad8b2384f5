"""`netsculpt grow MODEL --layer conv2=14 --branch conv1=1x1:4 --out DIR`: Grow-Push-Prune's grow step.

``--layer`` widens a layer, ``--branch`` adds a parallel conv of another kernel size beside it (an
Inception-style branch, :mod:`netsculpt.gpp.branch`). The saved model has the extra output channels
(zero-weighted in their consumers, so it computes what MODEL computed) and records the ``grow`` /
``grow_branch`` edits, so `netsculpt train`, `prune --criterion gpp` or a recipe continue from it.
The whole grow -> push -> prune chain is a recipe: examples/lenet5_gpp.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from netsculpt.cli.common import add_model_args, example, load_model
from netsculpt.errors import ConfigError


def _layer(text: str) -> tuple[str, int]:
    name, sep, count = text.rpartition("=")
    if not sep or not name or not count.strip().isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"--layer takes NAME=CHANNELS_TO_ADD, e.g. conv2=14; got {text!r}")
    return name, int(count)


def _branch(text: str) -> tuple[str, str]:
    name, sep, spec = text.partition("=")
    if not sep or not name or ":" not in spec:
        raise argparse.ArgumentTypeError(f"--branch takes NAME=KxK:CHANNELS, e.g. conv2=1x1:4; got {text!r}")
    return name, spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grow",
        help="add output channels or parallel conv branches to layers without changing the model's outputs",
    )
    add_model_args(p)
    p.add_argument("--layer", type=_layer, action="append", default=[], metavar="NAME=N",
                   help="a layer and how many output channels to add (repeatable)")  # fmt: skip
    p.add_argument("--branch", type=_branch, action="append", default=[], metavar="NAME=KxK:N",
                   help="a conv and the branch to add beside it: kernel, channels (repeatable)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the new filters' random values")
    p.add_argument("--out", required=True, help="folder for the grown model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netsculpt.gpp import grow, grow_branch
    from netsculpt.io import save
    from netsculpt.measure import count_macs, count_params

    layers, branches = dict(args.layer), dict(args.branch)
    if len(layers) != len(args.layer) or len(branches) != len(args.branch):
        raise ConfigError("--layer or --branch names a layer twice; give each layer once per option")
    if not layers and not branches:
        raise ConfigError("give --layer NAME=N (widen) or --branch NAME=KxK:N (a parallel conv), or both")
    model, shape = load_model(args)
    x = example(shape)
    grown = grow(model.eval(), x, layers, seed=args.seed) if layers else model.eval()
    if branches:
        grown = grow_branch(grown, x, branches, seed=args.seed, inplace=grown is not model)
    save(grown, Path(args.out), extra={"input_shape": list(shape), "source": args.model})
    before, after = count_macs(model, x)[0], count_macs(grown, x)[0]
    grew = ", ".join(
        [*(f"{k} +{v}" for k, v in layers.items()), *(f"{k} +branch {v}" for k, v in branches.items())]
    )
    params = f"params {count_params(model):,} -> {count_params(grown):,}"
    print(f"grew {grew}: MACs {before:,} -> {after:,}, {params}; same outputs (checked); saved to {args.out}")
    return 0
