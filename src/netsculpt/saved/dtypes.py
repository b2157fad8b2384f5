"""Float dtypes of a saved model: recorded at save, restored on the rebuilt model before its weights load.

Builders make float32 models, so without this a float64 model reloaded rounded to float32, a float16 one
came back float32, and a packed (palettized) float64 file was refused as "a different architecture".
Only entries that are not float32 are recorded, so float32 files are unchanged and older files (which
record none) load as float32, as before.
"""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.errors import CheckpointError
from netsculpt.saved.document import FLOAT_DTYPES

_NAMES = {dtype: name for name, dtype in FLOAT_DTYPES.items()}


def float_dtypes(model: nn.Module) -> dict[str, str]:
    """``{state-dict key: dtype name}`` for every float entry that is not float32."""
    out = {}
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            if tensor.dtype not in _NAMES:
                raise CheckpointError(
                    f"cannot save this model: {key} is {tensor.dtype}, which netsculpt does not store; "
                    f"convert it to one of float32, {', '.join(FLOAT_DTYPES)}"
                )
            out[key] = _NAMES[tensor.dtype]
    return out


def cast_floats_(model: nn.Module, dtypes: dict[str, str], where: str, *, partial: bool = False) -> nn.Module:
    """Give the entries ``dtypes`` names their saved dtype, in place (parameters stay parameters).

    ``partial``: entries the model lacks are skipped (the base, before edits add or rename entries);
    otherwise a missing entry is refused, naming it and its dtype.
    """
    if not dtypes:
        return model
    tensors = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(model.named_buffers(remove_duplicate=False))
    with torch.no_grad():
        for key, name in dtypes.items():
            tensor = tensors.get(key)
            if tensor is None:
                if partial:
                    continue
                raise CheckpointError(
                    f"{where}: the saved {key} is {name}, but the rebuilt model has no parameter or "
                    "buffer of that name to give that dtype"
                )
            if tensor.is_floating_point() and tensor.dtype != FLOAT_DTYPES[name]:
                tensor.data = tensor.data.to(FLOAT_DTYPES[name])
    return model
