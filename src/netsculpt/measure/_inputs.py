"""Input normalisation and eval-mode handling shared by every measurement.

Every measurement runs the model the same way (eval mode, no autograd, inputs as a tuple), so the
numbers from MACs, memory and latency describe one and the same forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from netsculpt.errors import ConfigError

ExampleInputs = torch.Tensor | tuple[torch.Tensor, ...]


def as_tuple(example_inputs: ExampleInputs) -> tuple[torch.Tensor, ...]:
    """Return ``example_inputs`` as a tuple of tensors, or explain what was expected."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, list | tuple) and example_inputs:
        bad = [type(x).__name__ for x in example_inputs if not isinstance(x, torch.Tensor)]
        if not bad:
            return tuple(example_inputs)
        raise ConfigError(
            f"example_inputs must hold only tensors, got {', '.join(bad)} among them; "
            "pass a Tensor or a tuple of Tensors, e.g. torch.randn(1, 3, 224, 224)"
        )
    raise ConfigError(
        "example_inputs must be a Tensor or a non-empty tuple of Tensors, got "
        f"{type(example_inputs).__name__}; pass e.g. torch.randn(1, 3, 224, 224)"
    )


def check_module(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"expected a torch.nn.Module to measure, got {type(model).__name__}")
    return model


def describe(inputs: tuple[torch.Tensor, ...]) -> str:
    """Shapes and dtypes of the inputs, for error messages."""
    return ", ".join(f"{tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}" for x in inputs)


def at_batch(inputs: tuple[torch.Tensor, ...], batch_size: int) -> tuple[torch.Tensor, ...]:
    """The first sample of every input repeated ``batch_size`` times along dim 0.

    Latency is reported per batch size, so the batch is built from one sample rather than trusting
    whatever batch the example happened to have. Zero-dimensional inputs carry no batch and stay as they are.
    """
    if batch_size < 1:
        raise ConfigError(f"batch sizes must be >= 1, got {batch_size}")
    out = []
    for x in inputs:
        if x.dim() == 0:
            out.append(x)
            continue
        if x.shape[0] < 1:
            raise ConfigError(f"example input of shape {tuple(x.shape)} has an empty batch dimension")
        out.append(x[:1].expand(batch_size, *x.shape[1:]).contiguous())
    return tuple(out)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's own flag afterwards.

    Restoring per submodule (not just ``model.train(was_training)``) keeps models whose parts are
    deliberately in different modes, e.g. frozen batch norm during fine-tuning, exactly as they were.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def run_forward(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> object:
    """Call the model, turning a failure into an error that names the inputs that were used."""
    try:
        return model(*inputs)
    except Exception as exc:
        raise ConfigError(
            f"{type(model).__name__} failed on example inputs [{describe(inputs)}]: "
            f"{type(exc).__name__}: {exc}. Pass example_inputs the model accepts (a Tensor or a tuple "
            "matching forward's positional arguments)."
        ) from exc
