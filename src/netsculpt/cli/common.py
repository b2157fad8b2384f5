"""What every command needs: resolve a MODEL argument, its example input, and print results."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.modes import module_modes, restore_modes


class DefaultsFormatter(argparse.HelpFormatter):
    """``--help`` that shows each option's default, as ``ArgumentDefaultsHelpFormatter`` does, but only
    where it tells something: not when the help already says it, the default is ``None`` (the help then
    says what is used), or a switch is off."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text, default = action.help or "", shown_default(action)
        if default is None or "default" in text.lower():
            return action.help
        return f"{text} (default: {default.replace('%', '%%')})".lstrip()


def shown_default(action: argparse.Action) -> str | None:
    """An option's default as ``--help`` and docs/cli.md show it, or None for nothing worth showing."""
    default = action.default
    if (
        not action.option_strings
        or any(default is v for v in (None, False, argparse.SUPPRESS))
        or default == []
    ):
        return None
    if isinstance(default, list | tuple):
        return " ".join(str(v) for v in default)
    return str(default)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"input shape must look like 1,3,224,224, got {text!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise argparse.ArgumentTypeError(f"input shape must be positive integers, got {text!r}")
    return shape


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", help="zoo name (see `netsculpt models`), torchvision:NAME, timm:NAME, or a saved directory"
    )
    p.add_argument("--num-classes", type=int, default=None, help="classifier size (default: the model's)")
    p.add_argument("--in-channels", type=int, default=None, help="input channels (1 for digits)")
    p.add_argument("--checkpoint", default=None, help="a state dict (.safetensors or torch weights) to load")
    p.add_argument("--input-shape", type=parse_shape, default=None, help="example input, e.g. 1,3,224,224")
    p.add_argument(
        "--model-option",
        dest="model_options",
        action="append",
        default=[],
        type=parse_option,
        metavar="KEY=VALUE",
        help="an option of the model's builder (repeatable), e.g. min_size=320 for a torchvision detector",
    )
    p.add_argument(
        "--trust-builder",
        default=None,
        metavar="PKG.MOD:FN",
        help="for a saved model whose base netsculpt cannot build: the exact builder you allow to run",
    )


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with the value read as a YAML scalar (``320`` an int, ``true`` a bool, ``a`` a str)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE (an option of the model's builder), got {text!r}"
        )
    value = yaml.safe_load(raw)
    flat_list = isinstance(value, list) and not any(isinstance(v, dict | list) for v in value)
    if isinstance(value, dict) or (isinstance(value, list) and not flat_list):
        raise argparse.ArgumentTypeError(
            f"{key}: only plain values (numbers, strings, true/false) or a flat list such as [10,30], "
            f"got {raw!r}"
        )
    return key.strip(), value


def load_model(args: argparse.Namespace) -> tuple[nn.Module, tuple[int, ...]]:
    """The model a command works on, and the example input shape to trace / measure it with."""
    from netsculpt.io import is_saved_model, load, read_spec
    from netsculpt.models import create_model, model_input_shape

    if Path(args.model).is_dir():
        if not is_saved_model(args.model):
            raise ConfigError(
                f"{args.model!r} is a folder but not a saved netsculpt model (no netsculpt.json)"
            )
        model = load(args.model, trust_builder=getattr(args, "trust_builder", None))
        data = read_spec(args.model)
        shape = data.get("extra", {}).get("input_shape")
        base = data["base"]
        if shape is None and base["kind"] == "netsculpt":
            shape = model_input_shape(base["name"], in_channels=base.get("in_channels"))
        shape = args.input_shape or (tuple(shape) if shape else None)
        if shape is None:
            raise ConfigError("pass --input-shape: this saved model does not record its input shape")
        return model, tuple(shape)
    options = dict(getattr(args, "model_options", None) or [])
    model = create_model(
        args.model,
        num_classes=args.num_classes,
        in_channels=args.in_channels,
        checkpoint=args.checkpoint,
        **options,
    )
    shape = args.input_shape or model_input_shape(args.model, in_channels=args.in_channels)
    return model, tuple(shape)


def example(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def forward_or_explain(model: nn.Module, x: Any, what: str, advice: str) -> Any:
    """``model(x)`` in eval mode without grad (the mode put back after), a failure turned into
    ``"{what} (the error); {advice}"``: a shape the model cannot take otherwise ends deep inside torch."""
    from netsculpt.errors import ConfigError

    modes = module_modes(model)
    try:
        with torch.no_grad():
            return model.eval()(x)
    except Exception as exc:
        raise ConfigError(f"{what} ({type(exc).__name__}: {str(exc)[:160]}); {advice}") from None
    finally:
        restore_modes(modes)


def check_fits_data(model: nn.Module, loader: Any) -> None:
    """Run one image of ``loader`` through ``model``: a LeNet-5 fed 32 px digits, or a 1-channel model
    given RGB, is refused with what to change."""
    images = next(iter(loader))[0][:1]
    forward_or_explain(
        model,
        images,
        f"the model cannot take the data's images of shape {tuple(images.shape[1:])}",
        "match them with --resize / --channels, or build the model for that size (e.g. --model-option "
        "input_size=32 for lenet5)",
    )


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
