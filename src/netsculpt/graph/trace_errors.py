"""What ``ns.trace`` says when the model's forward fails: the model's own fault, or the trace's.

A forward can fail under the trace for two reasons that call for opposite fixes: the model fails on these
inputs anyway (a wrong input shape, a broken config), or netsculpt's tracing broke a model that runs. On
the failure path only, the model is run once more without netsculpt (same mode, state restored) to tell
them apart, so the error says which it is and gives the model's own error.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from netsculpt.graph.snapshot import ModuleSnapshot
from netsculpt.measure._inputs import describe


def untraced_failure(
    model: torch.nn.Module, inputs: tuple, set_mode: Callable[[torch.nn.Module], None]
) -> BaseException | None:
    """The error ``model(*inputs)`` raises without netsculpt (in the mode the trace used), or None."""
    snapshot = ModuleSnapshot(model)  # what the forward caches or counts is put back, as after a trace
    set_mode(model)
    try:
        with torch.no_grad():
            model(*inputs)
    except Exception as exc:  # any error of the model's own is the answer, not a failure here
        return exc
    finally:
        snapshot.restore()
    return None


def _expected(module: torch.nn.Module | None) -> str:
    """What the failing layer expects, in words (the shape a user should have passed)."""
    if isinstance(module, torch.nn.modules.conv._ConvNd):
        return f" `{type(module).__name__}` expects input of shape (N, {module.in_channels}, ...)."
    if isinstance(module, torch.nn.Linear):
        return f" `Linear` expects input of shape (..., {module.in_features})."
    if isinstance(module, torch.nn.modules.batchnorm._NormBase):
        return f" `{type(module).__name__}` expects {module.num_features} channels."
    return ""


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def forward_failure_message(
    exc: BaseException,
    where: str,
    inputs: tuple,
    module: torch.nn.Module | None,
    untraced: BaseException | bool | None = True,
) -> str:
    """The error for a forward that failed under the trace. ``untraced`` is what the model raised when run
    without netsculpt (an exception), None if it ran, True if it was not tried."""
    shapes = describe(inputs)
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, TypeError) and "positional argument" in first and not where:
        return (
            f"the model's forward does not take the example inputs ({shapes}) as positional arguments: "
            f"{first}. netsculpt calls model(*example_inputs); for a forward taking keyword arguments "
            "(forward(**batch), keyword-only tensors) wrap it in a module whose forward takes them "
            "positionally and calls the model with the keywords, and prune that wrapper"
        )
    inside = f"`{where or '<root>'}`"
    if isinstance(untraced, BaseException):
        return (
            f"the model itself fails on the example inputs (shapes {shapes}), outside netsculpt too: "
            f"model(*example_inputs) raises {_first_line(untraced)} (under the trace: inside {inside})."
            f"{_expected(module)} Fix the model (its config) or the inputs so that model(*example_inputs) "
            "runs; netsculpt traces exactly that call."
        )
    if untraced is None:
        return (
            f"the model runs on the example inputs (shapes {shapes}) by itself, but failed while netsculpt "
            f"traced it, inside {inside}: {type(exc).__name__}: {first}. This is a netsculpt limitation, "
            "not your inputs: please report it with the model's class and this message (docs/engine.md), "
            "or prune a part of the model that does not reach this code"
        )
    return (
        f"the model failed on the example inputs (shapes {shapes}) inside {inside}: "
        f"{type(exc).__name__}: {first}.{_expected(module)} Check example_inputs has the shape the model "
        "expects (for example (1, 3, 224, 224) for torchvision classifiers)."
    )
