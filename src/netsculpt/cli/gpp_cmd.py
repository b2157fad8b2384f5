"""`netsculpt grow MODEL --layer conv2=14 --out DIR`: Grow-Push-Prune's grow step on its own.

The saved model has the extra output channels (zero-weighted in their consumers, so it computes what
MODEL computed) and records the ``grow`` edit, so `netsculpt train`, `prune --criterion gpp` or a recipe
continue from it. The whole grow -> push -> prune chain is a recipe: examples/lenet5_gpp.yaml.
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grow", help="add output channels to layers without changing the model's outputs")
    add_model_args(p)
    p.add_argument("--layer", type=_layer, action="append", required=True, metavar="NAME=N",
                   help="a layer and how many output channels to add (repeatable)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the new filters' random values")
    p.add_argument("--out", required=True, help="folder for the grown model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netsculpt.gpp import grow
    from netsculpt.io import save
    from netsculpt.measure import count_macs, count_params

    layers = dict(args.layer)
    if len(layers) != len(args.layer):
        raise ConfigError("--layer names a layer twice; give each layer once")
    model, shape = load_model(args)
    x = example(shape)
    grown = grow(model.eval(), x, layers, seed=args.seed)
    save(grown, Path(args.out), extra={"input_shape": list(shape), "source": args.model})
    before, after = count_macs(model, x)[0], count_macs(grown, x)[0]
    grew = ", ".join(f"{k} +{v}" for k, v in layers.items())
    params = f"params {count_params(model):,} -> {count_params(grown):,}"
    print(f"grew {grew}: MACs {before:,} -> {after:,}, {params}; same outputs (checked); saved to {args.out}")
    return 0
