"""Dense tensors of a packed file: one-letter dtype codes, fp16 narrowing and the architecture hash.

Dense tensors are stored nameless, concatenated per stored dtype in state-dict order; the rebuilt model
supplies their names and shapes, and :func:`layout_hash` checks both match what was saved.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn

from netsculpt.errors import CheckpointError, ConfigError, warn_user
from netsculpt.weights.palette import iter_palettes

CODES = {
    torch.float32: "f",
    torch.float16: "h",
    torch.bfloat16: "b",
    torch.float64: "d",
    torch.int64: "q",
    torch.int32: "i",
    torch.int16: "s",
    torch.int8: "c",
    torch.uint8: "B",
    torch.bool: "?",
}
DTYPES = {code: dtype for dtype, code in CODES.items()}
FP16_MAX = float(torch.finfo(torch.float16).max)  # 65504


def round_dense_(model: nn.Module, dense_dtype: str = "float32") -> nn.Module:
    """With ``"float16"``, round every float tensor that is not palettized to fp16 values, in place.

    A tensor with values beyond float16's range (|x| > 65504: e.g. the running variance of a net fed
    0..255 pixels) would turn into inf and change the outputs, so it stays as it is, with a warning;
    :func:`stored_dtype` then stores it in its own dtype, so the file holds what the model holds.
    """
    if dense_dtype not in ("float32", "float16"):
        raise ConfigError(f"dense_dtype must be 'float32' or 'float16', got {dense_dtype!r}")
    if dense_dtype == "float32":
        return model
    palettized = {key for key, _ in iter_palettes(model)}
    kept = []
    with torch.no_grad():
        for key, tensor in model.state_dict(keep_vars=True).items():
            if key in palettized or not tensor.is_floating_point() or tensor.dtype == torch.float16:
                continue
            rounded = tensor.to(torch.float16)
            if (rounded.isinf() & tensor.isfinite()).any():
                kept.append(key)
                continue
            tensor.copy_(rounded.to(tensor.dtype))
    if kept:
        warn_user(
            f"dense_dtype='float16' leaves {', '.join(kept)} in full precision: values beyond float16's "
            f"range (|x| > {FP16_MAX:g}) would become inf and change the outputs",
            UserWarning,
        )
    return model


def stored_dtype(tensor: Tensor) -> torch.dtype:
    """float16 for a float32 tensor whose values are all exact in float16, else the tensor's own dtype."""
    if tensor.dtype == torch.float32 and torch.equal(tensor.to(torch.float16).float(), tensor):
        return torch.float16
    if tensor.dtype not in CODES:
        raise CheckpointError(f"cannot pack a tensor of dtype {tensor.dtype}")
    return tensor.dtype


def layout_hash(state: dict[str, Tensor], keys: list[str]) -> str:
    """A short hash of the names, shapes and dtypes of ``keys`` (the dense part of the architecture)."""
    text = ";".join(f"{k}:{tuple(state[k].shape)}:{state[k].dtype}" for k in keys)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pack_dense(state: dict[str, Tensor], keys: list[str], tensors: dict[str, Tensor]) -> tuple[str, str]:
    """Append ``keys`` to ``dense.<code>`` blobs in ``tensors``; returns (dtype codes, layout hash)."""
    codes, blobs = [], {}
    for key in keys:
        dtype = stored_dtype(state[key])
        codes.append(CODES[dtype])
        blobs.setdefault(dtype, []).append(state[key].detach().reshape(-1).to(dtype))
    tensors.update({f"dense.{CODES[d]}": torch.cat(parts).contiguous() for d, parts in blobs.items()})
    return "".join(codes), layout_hash(state, keys)


def unpack_dense(
    keys: list[str], codes: str, blobs: dict[str, Tensor], reference: dict[str, Tensor]
) -> dict[str, Tensor]:
    """The dense tensors back, shaped and typed like the rebuilt model's (sizes checked beforehand)."""
    state, offsets = {}, {}
    for key, code in zip(keys, codes):
        blob, start = blobs[f"dense.{code}"], offsets.get(code, 0)
        n = reference[key].numel()
        state[key] = blob[start : start + n].reshape(reference[key].shape).to(reference[key].dtype)
        offsets[code] = start + n
    return state
