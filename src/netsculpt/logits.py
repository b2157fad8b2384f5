"""The classification logits inside a model's output, read without knowing the model's library.

Hugging Face models return a ``ModelOutput`` (an ``OrderedDict`` subclass whose fields are also
attributes) holding ``logits``; other libraries return a dict or a dataclass with the same field. The
criteria, losses and distillation that need (batch, classes) logits read that field, so such a model
works unwrapped. A bare tuple is left alone on purpose: an ultralytics classifier returns
``(probabilities, logits)`` in eval mode, so "the first tensor" would silently be the wrong one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor


def logits_of(output: Any) -> Any:
    """``output`` itself when it is a tensor; its ``logits`` tensor when it is a mapping or object that
    names one; otherwise ``output`` unchanged, for the caller's own check to refuse with its message."""
    if isinstance(output, Tensor):
        return output
    found = output.get("logits") if isinstance(output, Mapping) else getattr(output, "logits", None)
    return found if isinstance(found, Tensor) else output
