"""Where the bytes of a weights file go: bits per weight for every tensor, as :func:`netsculpt.save` packs it.

The report's weights page shows this table for the final model, once as the run saved it (plain coding)
and once with ``coding="context"``, so the gain of entropy coding is visible per layer. The numbers come
from :func:`netsculpt.weights.storage.pack_state` itself (the very bytes written), not from a formula.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from netsculpt.weights.dense_blobs import CODES
from netsculpt.weights.masked_coding import MASKED
from netsculpt.weights.packing import packed_nbytes
from netsculpt.weights.sparse_palette import masked_nbytes
from netsculpt.weights.sparse_store import PLAIN_INDICES
from netsculpt.weights.storage import META_KEY, pack_state

DTYPE_OF_CODE = {code: dtype for dtype, code in CODES.items()}


@dataclass
class TensorBits:
    """One state-dict tensor: ``values`` it holds, ``nbytes`` it takes in the file, how it is stored."""

    name: str
    shape: tuple[int, ...]
    values: int
    zeros: float
    nbytes: int
    form: str

    @property
    def bits(self) -> float:
        return 8.0 * self.nbytes / max(self.values, 1)


def _name(code: str) -> str:
    return str(DTYPE_OF_CODE[code]).removeprefix("torch.")


def _itemsize(code: str) -> int:
    return torch.empty((), dtype=DTYPE_OF_CODE[code]).element_size()


def tensor_bits(model: nn.Module, coding: str = "plain") -> list[TensorBits]:
    """Every state-dict tensor of ``model`` with the bytes ``ns.save(model, coding=coding)`` gives it.

    Excludes only the safetensors header and the packing metadata (a few hundred bytes per file).
    """
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    _, meta = pack_state(model, state, coding)
    rows: dict[str, tuple[int, str]] = {}
    if META_KEY not in meta:  # nothing palettized or sparse: a plain state dict
        return _rows(state, rows)
    info = json.loads(meta[META_KEY])
    coded = info.get("coded")
    masked = {entry[0]: entry[1:] for entry in info.get("masked", [])}
    for index, (key, bits, shape, groups, dim) in enumerate(info.get("palettes", [])):
        count = int(np.prod(shape)) // dim
        size = coded[index][1] if coded else packed_nbytes(count, bits)
        how = f"{coded[index][0]}-coded" if coded and coded[index][0] != PLAIN_INDICES else "packed"
        if coded and coded[index][0] == MASKED:  # context form of a sparse palette: mask, kept indices
            layout, _, _, kept_model = coded[index][2:]
            how = f"masked, {layout} mask, {kept_model} kept indices"
        if index in masked:  # a sparse palette: mask, then the indices of the points it keeps
            layout, kept, mask_bytes = masked[index]
            size, how = masked_nbytes(bits, kept, mask_bytes), f"packed, {layout} mask"
        rows[key] = (size + groups * 2**bits * dim * 2, f"palette {bits}-bit, {how}")
    for key, code, layout, nonzero, nbytes in info.get("sparse", []):
        rows[key] = (nbytes + nonzero * _itemsize(code), f"sparse, {layout} mask, {_name(code)} values")
    dense = [k for k in state if k not in rows]
    for key, code in zip(dense, info.get("dense", [])):
        rows[key] = (state[key].numel() * _itemsize(code), f"dense {_name(code)}")
    return _rows(state, rows)


def _rows(state: dict[str, torch.Tensor], rows: dict[str, tuple[int, str]]) -> list[TensorBits]:
    out = []
    for key, tensor in state.items():
        plain = (tensor.numel() * tensor.element_size(), f"dense {str(tensor.dtype).removeprefix('torch.')}")
        nbytes, form = rows.get(key, plain)
        zeros = float((tensor == 0).sum()) / max(tensor.numel(), 1)
        out.append(TensorBits(key, tuple(tensor.shape), tensor.numel(), zeros, nbytes, form))
    return out
