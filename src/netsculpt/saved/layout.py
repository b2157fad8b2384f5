"""Memory format of a saved model: recorded at save, restored on the rebuilt model after its weights load.

Builders make contiguous (NCHW) models and safetensors stores contiguous tensors, so a model converted
with ``model.to(memory_format=torch.channels_last)`` used to reload as NCHW and run at another speed on
the CPU without a word. ``netsculpt.json`` records ``"memory_format": "channels_last"`` only when some 4-D
parameter is in that layout, so files of default models are unchanged (older netsculpt refuses a field
it does not know) and files without it load contiguous, as before.
"""

from __future__ import annotations

import torch
from torch import nn

#: layouts a saved model may record (the schema's enum); NCHW is the default and never written
MEMORY_FORMATS = {"channels_last": torch.channels_last}


def _channels_last(tensor: torch.Tensor) -> bool:
    """In channels_last and not also plain contiguous: a ``[C, 1, 1, 1]`` weight is both, and says nothing."""
    return (
        tensor.dim() == 4
        and tensor.is_contiguous(memory_format=torch.channels_last)
        and not tensor.is_contiguous()
    )


def memory_format(model: nn.Module) -> str | None:
    """``"channels_last"`` when some 4-D parameter of ``model`` is stored so, else None (NCHW)."""
    if any(_channels_last(p) for p in model.parameters()):
        return "channels_last"
    return None


def restore_memory_format_(model: nn.Module, name: str | None) -> nn.Module:
    """Convert ``model`` in place to the recorded layout (what ``model.to(memory_format=...)`` did)."""
    if name is None:
        return model
    return model.to(memory_format=MEMORY_FORMATS[name])
