"""Input normalisation and eval-mode handling shared by every measurement.

Every measurement runs the model the same way (eval mode, no autograd, inputs as a tuple), so the
numbers from MACs, memory and latency describe one and the same forward pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from netsculpt.checks import materialised
from netsculpt.errors import ConfigError

ExampleInputs = Any
"""A Tensor, or a tuple of ``forward``'s positional arguments, each a tensor or any nesting of
tuples, lists and dicts of tensors with other leaves (ints, strings, None) passed through as they are:
``torch.randn(1, 3, 224, 224)``, ``(images, masks)``, ``([image],)`` for a torchvision detector."""


LIST_HINT = "pass ([img, ...],) : a tuple whose one element is the list of images"


def as_tuple(example_inputs: ExampleInputs) -> tuple[Any, ...]:
    """``forward``'s positional arguments as a tuple, or explain what was expected.

    A bare list is refused: ``[img]`` is how a torchvision detector is called (one list argument), but
    it used to be unpacked as positional arguments, and the detector then failed deep inside with an
    error about image shapes. Guessing either meaning would be wrong for some model, so ask.
    """
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, dict):
        raise ConfigError(
            "example_inputs is a dict: netsculpt passes a tuple's items as forward's positional "
            "arguments, so wrap it, (inputs_dict,), to pass one dict argument; a forward taking keyword "
            "arguments (forward(**batch)) needs a wrapper module whose forward takes them positionally"
        )
    if isinstance(example_inputs, list):
        raise ConfigError(
            f"example_inputs is a list ({describe(example_inputs) or 'empty'}): netsculpt passes a tuple's "
            f"items as forward's positional arguments. For a model called with a list (a detector), "
            f"{LIST_HINT}; for several positional arguments pass a tuple, (x, y)"
        )
    if isinstance(example_inputs, tuple) and example_inputs:
        if not tensor_leaves(example_inputs):
            raise ConfigError(
                f"example_inputs hold no tensor ({describe(tuple(example_inputs))}); pass at least one "
                "Tensor, e.g. torch.randn(1, 3, 224, 224)"
            )
        return tuple(example_inputs)
    raise ConfigError(
        "example_inputs must be a Tensor or a non-empty tuple of forward's arguments, got "
        f"{type(example_inputs).__name__}; pass e.g. torch.randn(1, 3, 224, 224) or ([image],)"
    )


def tensor_leaves(tree: Any, _depth: int = 0) -> list[torch.Tensor]:
    """Every tensor inside (nested) tuples/lists/dicts/namedtuples, in ``torch.utils._pytree`` order, and
    inside what pytree leaves whole: dataclasses, Mapping subclasses (Hugging Face's ``ModelOutput``)
    and plain objects' attributes. Tracing pins every output tensor it finds here: a logits tensor
    inside a dataclass it missed was pruned like a hidden layer (10 classes became 5)."""
    found = []
    for leaf in tree_flatten(tree)[0]:
        if isinstance(leaf, torch.Tensor):
            found.append(leaf)
        elif _depth < 8:
            found += [t for item in _members(leaf) for t in tensor_leaves(item, _depth + 1)]
    return found


def _members(obj: Any) -> list[Any]:
    """The values a container pytree does not know holds: dataclass fields, a Mapping's values, an
    object's attributes (not a module's or a class's: those are the model, not its output)."""
    import dataclasses
    from collections.abc import Mapping

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    if isinstance(obj, Mapping):
        return list(obj.values())
    if isinstance(obj, list | tuple | set | frozenset):
        return list(obj)
    if isinstance(obj, nn.Module | type) or not hasattr(obj, "__dict__"):
        return []
    return list(vars(obj).values())


def is_flat(inputs: tuple[Any, ...]) -> bool:
    """True when every positional argument is a tensor (the classic ``model(x)`` / ``model(x, y)``)."""
    return all(isinstance(x, torch.Tensor) for x in inputs)


def check_module(model: object, verb: str = "measure", then: str | None = None) -> nn.Module:
    """A module whose layers all have shapes (``verb`` / ``then`` word the error, see checks.materialised)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"expected a torch.nn.Module to measure, got {type(model).__name__}")
    return materialised(model, verb, then=then)


def describe(inputs: Any) -> str:
    """Shapes and dtypes of the inputs (other leaves by type), for error messages."""

    def one(x: Any) -> str:
        if isinstance(x, torch.Tensor):
            return f"{tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}"
        return type(x).__name__

    return ", ".join(one(x) for x in tree_flatten(inputs)[0])


def batch_of(inputs: tuple[Any, ...]) -> int | None:
    """The batch size of the example as given: dim 0, shared by every input with one (the convention
    ``at_batch`` uses). None when it is not known: structured inputs, or inputs whose dim 0 differ."""
    if not is_flat(inputs):
        return None
    sizes = {int(x.shape[0]) for x in inputs if x.dim() > 0}
    return sizes.pop() if len(sizes) == 1 else None


def at_batch(inputs: tuple[Any, ...], batch_size: int) -> tuple[Any, ...]:
    """The first sample of every input repeated ``batch_size`` times along dim 0.

    Latency is reported per batch size, so the batch is built from one sample rather than trusting
    whatever batch the example happened to have. Zero-dimensional inputs carry no batch and stay as they
    are. Structured inputs (a detector's list of images, dicts) have no dim 0 netsculpt can know to be
    the batch: they are used as given, and only at batch size 1.
    """
    if batch_size < 1:
        raise ConfigError(f"batch sizes must be >= 1, got {batch_size}")
    if not is_flat(inputs):
        if batch_size != 1:
            raise ConfigError(
                f"batch size {batch_size}: structured example inputs ({describe(inputs)}) are timed as "
                "given; netsculpt cannot tell which dim is the batch. Time batch size 1, or pass the "
                "larger batch itself as the example"
            )
        return inputs
    out = []
    for x in inputs:
        if x.dim() == 0:
            out.append(x)
            continue
        if x.shape[0] < 1:
            raise ConfigError(f"example input of shape {tuple(x.shape)} has an empty batch dimension")
        out.append(x[:1].expand(batch_size, *x.shape[1:]).contiguous())
    return tuple(out)


def run_forward(model: nn.Module, inputs: tuple[Any, ...]) -> object:
    """Call the model, turning a failure into an error that names the inputs that were used."""
    try:
        return model(*inputs)
    except Exception as exc:
        raise ConfigError(
            f"{type(model).__name__} failed on example inputs [{describe(inputs)}]: "
            f"{type(exc).__name__}: {exc}. Pass example_inputs the model accepts (a Tensor or a tuple "
            "matching forward's positional arguments)."
        ) from exc
