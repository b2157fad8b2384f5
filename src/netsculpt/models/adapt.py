"""Change the number of input channels of a model built for RGB, without knowing its architecture.

The conv that reads the image is found by running the model and catching the first ``nn.Conv2d`` that
executes (registration order can lie: a model may define its head before its stem). It is replaced by a
conv with the new ``in_channels`` and identical other settings, and the swap is proven by a second run
that stops right after the new conv and checks it produces the same output shape as the old one did.
Both runs stop early, so even a large model costs about one conv layer's compute.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.modes import module_modes, restore_modes


class _Stop(Exception):
    """Raised from a hook to end a probing forward pass early."""


def _first_conv(model: nn.Module, example: torch.Tensor) -> tuple[str, torch.Size]:
    """Name of the first Conv2d to run on ``example``, and the shape it outputs."""
    found: list[tuple[str, torch.Size]] = []
    handles = []

    def hook(name: str):
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            found.append((name, output.shape))
            raise _Stop

        return record

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(hook(name)))
    try:
        _run(model, example)
    finally:
        for handle in handles:
            handle.remove()
    if not found:
        raise LookupError("no nn.Conv2d ran during a forward pass")
    return found[0]


def _run(model: nn.Module, example: torch.Tensor) -> None:
    """Forward in eval mode (batch-1 BN statistics would fail in train mode), stopping at a hook."""
    modes = module_modes(model)
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    except _Stop:
        pass
    finally:
        restore_modes(modes)


def _adapted_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Reuse the model's own initial weights: cycle the RGB filters over the new channels.

    Scaling by sqrt(old / new) keeps each output's variance what the model's initialisation chose.
    """
    old = weight.shape[1]
    index = torch.arange(in_channels, device=weight.device) % old
    return weight[:, index] * math.sqrt(old / in_channels)


def replace_input_conv(
    model: nn.Module, in_channels: int, sample_shape: tuple[int, ...], model_name: str
) -> None:
    """Swap the conv that reads the input for one taking ``in_channels`` channels (in place).

    ``sample_shape`` is one RGB sample's shape ``(3, H, W)`` at which the model runs.
    """
    device = next(model.parameters()).device
    example = torch.zeros(1, *sample_shape, device=device)
    try:
        name, out_shape = _first_conv(model, example)
    except Exception as exc:
        raise ConfigError(
            f"cannot set in_channels={in_channels} for {model_name}: no Conv2d reads its input "
            f"({type(exc).__name__}: {exc}). Build it with in_channels=3 and adapt the input yourself."
        ) from None
    old = model.get_submodule(name)
    assert isinstance(old, nn.Conv2d)
    if old.in_channels != sample_shape[0] or old.groups != 1:
        raise ConfigError(
            f"cannot set in_channels={in_channels} for {model_name}: its first conv {name!r} takes "
            f"{old.in_channels} channels in {old.groups} groups, not the {sample_shape[0]} image channels"
        )
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
        device=device,
        dtype=old.weight.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(_adapted_weight(old.weight, in_channels))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attr, new)

    check = torch.zeros(1, in_channels, *sample_shape[1:], device=device)
    try:
        new_name, new_shape = _first_conv(model, check)
    except Exception as exc:
        raise ConfigError(
            f"set in_channels={in_channels} for {model_name} by replacing {name!r}, but the model then "
            f"fails before that conv ({type(exc).__name__}: {exc})"
        ) from None
    if new_name != name or new_shape != out_shape:
        raise ConfigError(
            f"set in_channels={in_channels} for {model_name} by replacing {name!r}, but the check run "
            f"reached {new_name!r} with output {tuple(new_shape)} instead of {tuple(out_shape)}"
        )
