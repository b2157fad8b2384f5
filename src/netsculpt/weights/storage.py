"""Packed storage of palettized models inside the ordinary ``model.safetensors`` file.

A model with palettized layers is written as a handful of blobs instead of one tensor per name:

* ``palettes.indices`` (uint8): every palettized tensor's indices, bit-packed at its own bit width;
* ``palettes.luts`` (float16): every lookup table, ``(groups, 2**bits, vector_dim)`` each;
* ``dense.<dtype>``: all other state-dict tensors, flattened and concatenated per stored dtype, in the
  order of the model's state dict.

The header metadata (``netsculpt.packed``, JSON) lists the palettized keys with their layout and one
dtype code per dense tensor. A sparse palette (most points on its zero entry) is stored, where smaller,
as a mask plus the indices of the other points (``masked``, packed format 3;
:mod:`~netsculpt.weights.sparse_palette`); with ``coding="context"``, as a coded mask plus the coded kept
indices (a ``masked`` entry in ``coded``, format 4; :mod:`~netsculpt.weights.masked_coding`). Dense
tensors need no names: :func:`netsculpt.load` rebuilds the model first, so its state dict supplies names,
order and shapes (a hash of them is checked). Per-tensor
safetensors headers cost ~80 bytes each, which on ResNet-20 at 4 bits is 8% of the file. A float32
tensor whose values are all exact in float16 (see :func:`round_dense_`) is stored as float16; every
tensor reloads bit for bit. Dense blobs live in :mod:`~netsculpt.weights.dense_blobs`, header validation
in :mod:`~netsculpt.weights.packed_check`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from netsculpt.errors import CheckpointError, ConfigError, warn_user
from netsculpt.weights.dense_blobs import CODES, pack_dense, round_dense_, stored_dtype, unpack_dense
from netsculpt.weights.masked_coding import MASKED, decode_masked_coded, encode_masked_coded
from netsculpt.weights.packed_check import (
    DIGEST_KEY,
    FORMAT_VERSION,
    MASKED_PLAIN_VERSION,
    META_KEY,
    check_packed,
)
from netsculpt.weights.packing import pack_bits, packed_nbytes, unpack_bits
from netsculpt.weights.palette import PALETTES_ATTR, Palette, iter_palettes
from netsculpt.weights.sparse_palette import decode_masked, encode_masked, masked_nbytes
from netsculpt.weights.sparse_store import (
    CODINGS,
    decode_indices,
    decode_mask,
    encode_indices,
    encode_mask,
    file_digest,
    worth_sparse,
)

__all__ = [
    "FORMAT_VERSION",
    "META_KEY",
    "pack_state",
    "packed_size_bytes",
    "read_packed",
    "round_dense_",
    "unpack_state",
]


def pack_state(
    model: nn.Module, state: dict[str, Tensor], coding: str = "plain"
) -> tuple[dict[str, Tensor], dict[str, str] | None]:
    """The tensors and header metadata to write for ``model`` (``state``: its state dict).

    A model without palettes or sparse tensors is returned as is: the file stays a plain state dict,
    with only the SHA-256 of its tensors in the header (``DIGEST_KEY``), checked on load.
    ``coding="context"`` range-codes palette indices and sparsity masks.
    """
    if coding not in CODINGS:
        raise ConfigError(f"coding={coding!r} is not supported; use one of {', '.join(CODINGS)}")
    if any(".parametrizations." in key for key in state) and _has_dkm(model):
        raise CheckpointError(
            "the model is still being clustered (it carries DKM parametrizations); call "
            "netsculpt.weights.snap_dkm_(model) before saving"
        )
    palettes: list[tuple[str, Palette]] = []
    for key, palette in iter_palettes(model):
        if key in state and torch.equal(state[key], palette.weight().to(state[key].dtype)):
            palettes.append((key, palette))
        elif key in state:
            warn_user(f"{key} changed after it was palettized; it is saved as a dense tensor", UserWarning)
    packed = {key for key, _ in palettes}
    sparse_keys = [k for k in state if k not in packed and worth_sparse(state[k])]
    if not palettes and not sparse_keys:
        return state, {DIGEST_KEY: file_digest(state)}
    tensors: dict[str, Tensor] = {}
    info: dict[str, Any] = {"version": 1 if coding == "plain" and not sparse_keys else 2}
    info["palettes"], coded, masked = _pack_palettes(palettes, coding, tensors)
    if coding == "context":
        info["coded"] = coded
        if any(entry[0] == MASKED for entry in coded):  # netsculpt before 2026-12-07 (evening) refuses it
            info["version"] = FORMAT_VERSION
    if masked:  # sparse palettes as mask + kept indices: an older netsculpt refuses the file
        info["masked"], info["version"] = masked, MASKED_PLAIN_VERSION
    if sparse_keys:
        info["sparse"] = _pack_sparse(state, sparse_keys, coding, tensors)
    dense_keys = [k for k in state if k not in packed and k not in set(sparse_keys)]
    info["dense"], info["layout"] = pack_dense(state, dense_keys, tensors)
    info["digest"] = file_digest(tensors, info)  # every version: a flipped bit, header or blob, never loads
    packed_file = tensors, {META_KEY: json.dumps(info, separators=(",", ":"))}
    if coding == "context":  # the coder's records cost header bytes: keep it only where it pays overall
        plain = pack_state(model, state, "plain")
        return min(packed_file, plain, key=_file_bytes)
    return packed_file


def _file_bytes(packed: tuple[dict[str, Tensor], dict[str, str] | None]) -> int:
    """The size ``safetensors`` will write, up to a few bytes per tensor of header alignment."""
    tensors, metadata = packed
    header = sum(len(k) + 64 for k in tensors) + sum(len(v) for v in (metadata or {}).values())
    return header + sum(t.numel() * t.element_size() for t in tensors.values())


def _pack_palettes(
    palettes: list[tuple[str, Palette]], coding: str, tensors: dict[str, Tensor]
) -> tuple[list[list[Any]], list[list[Any]], list[list[Any]]]:
    """Indices and tables into ``palettes.*``; returns the entries, context-coded lengths and masked
    (sparse) palettes ``[index, mask layout, kept points, mask bytes]``."""
    index_blobs, luts, entries, coded, masked = [], [], [], [], []
    for index, (key, palette) in enumerate(palettes):
        sparse = None
        if coding == "context":
            entry, data = coded_palette(palette)
            coded.append(entry)
        else:  # the header entry's bytes count against the mask: keep it only where the file shrinks
            entry = [index, "bitmap", palette.indices.numel(), 0]
            overhead = len(json.dumps(entry, separators=(",", ":"))) + 1 + len(',"masked":[]') * (not masked)
            sparse = encode_masked(palette, overhead)
        if sparse is not None:
            layout, kept, mask_bytes, data = sparse
            masked.append([index, layout, kept, mask_bytes])
        elif coding != "context":
            data = pack_bits(palette.indices.numpy(), palette.bits)
        index_blobs.append(data)
        luts.append(palette.lut.reshape(-1))
        entries.append([key, palette.bits, list(palette.shape), palette.lut.shape[0], palette.lut.shape[-1]])
    if palettes:
        tensors["palettes.indices"] = torch.from_numpy(np.concatenate(index_blobs))
        tensors["palettes.luts"] = torch.cat(luts).contiguous()
    return entries, coded, masked


def coded_palette(palette: Palette) -> tuple[list[Any], np.ndarray]:
    """The smaller of the plain context form ``[model, bytes]`` and, for a sparse palette, the masked one
    ``["masked", bytes, mask layout, mask bytes, kept points, kept model]``, header bytes included."""
    model, data = encode_indices(palette.indices.numpy(), palette.bits, list(palette.shape))
    entry: list[Any] = [model, int(data.size)]
    masked = encode_masked_coded(palette)
    if masked is not None:
        tail, masked_data = masked
        masked_entry = [MASKED, int(masked_data.size), *tail]
        # by a whole alignment unit: the safetensors header is padded to 8 bytes, so a smaller sum could
        # still round up to a bigger file
        if masked_data.size + _header_bytes(masked_entry) + 8 <= data.size + _header_bytes(entry):
            return masked_entry, masked_data
    return entry, data


def _header_bytes(entry: list[Any]) -> int:
    """Bytes ``entry`` takes in the file's header: JSON inside a JSON string, so every quote escaped."""
    return len(json.dumps(json.dumps(entry, separators=(",", ":")))) - 2


def _pack_sparse(
    state: dict[str, Tensor], keys: list[str], coding: str, tensors: dict[str, Tensor]
) -> list[list[Any]]:
    """Masks into ``sparse.masks``, nonzero values appended per stored dtype to ``sparse.<code>``."""
    entries, masks, values = [], [], {}
    for key in keys:
        tensor = state[key].detach()
        nonzero = tensor != 0
        layout, data = encode_mask(nonzero.numpy(), tuple(tensor.shape), coding)
        kept = tensor[nonzero]
        dtype = stored_dtype(kept) if kept.numel() else tensor.dtype
        if dtype not in CODES:
            raise CheckpointError(f"cannot pack {key!r}: dtype {tensor.dtype}")
        values.setdefault(dtype, []).append(kept.to(dtype))
        masks.append(data)
        entries.append([key, CODES[dtype], layout, int(kept.numel()), int(data.size)])
    tensors["sparse.masks"] = torch.from_numpy(np.concatenate(masks))
    for dtype, parts in values.items():
        tensors[f"sparse.{CODES[dtype]}"] = torch.cat(parts).contiguous()
    return entries


def _has_dkm(model: nn.Module) -> bool:
    from netsculpt.weights.dkm import dkm_layers

    return bool(dkm_layers(model))


def read_packed(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """``(blobs, info)`` of a packed file, or None for a plain safetensors state dict."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if META_KEY not in meta:
                return None
            blobs = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {str(path)!r} as safetensors: {exc}") from None
    from netsculpt.jsoncheck import parse_json

    info = parse_json(meta[META_KEY], f"the palette metadata of {str(path)!r}")
    if not isinstance(info, dict):
        raise CheckpointError(f"{str(path)!r} has corrupt palette metadata: not a JSON object")
    if isinstance(info.get("version"), int) and info["version"] > FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} uses packed format {info['version']}; upgrade netsculpt")
    return blobs, info


def _unpack_sparse(
    entries: list[list[Any]], blobs: dict[str, Tensor], reference: dict[str, Tensor], where: str
) -> dict[str, Tensor]:
    state, byte, offsets = {}, 0, {}
    masks = blobs["sparse.masks"].numpy() if entries else None
    for key, code, layout, nonzero, nbytes in entries:
        assert masks is not None
        ref = reference[key]
        mask = decode_mask(layout, masks[byte : byte + nbytes], tuple(ref.shape), f"{where!r} ({key})")
        byte += nbytes
        if int(mask.sum()) != nonzero:
            raise CheckpointError(
                f"{where!r}: the mask of {key!r} keeps {int(mask.sum())} values, not {nonzero}"
            )
        start = offsets.get(code, 0)
        out = torch.zeros(ref.numel(), dtype=ref.dtype)
        out[torch.from_numpy(mask)] = blobs[f"sparse.{code}"][start : start + nonzero].to(ref.dtype)
        offsets[code] = start + nonzero
        state[key] = out.reshape(ref.shape)
    return state


def unpack_state(model: nn.Module, path: str | os.PathLike[str]) -> dict[str, Tensor] | None:
    """The full state dict of a packed file for the freshly rebuilt ``model``; records its palettes.

    Returns None when ``path`` is a plain state dict (the caller reads it the ordinary way).
    """
    packed = read_packed(path)
    if packed is None:
        return None
    blobs, info = packed
    reference = model.state_dict()
    dense_keys = check_packed(info, blobs, reference, str(path))
    state: dict[str, Tensor] = {}
    coded = info.get("coded")
    masked = {entry[0]: entry[1:] for entry in info.get("masked", [])}
    if info["palettes"]:
        indices, luts = blobs["palettes.indices"].numpy(), blobs["palettes.luts"]
    byte, entry = 0, 0
    for index, (key, bits, shape, groups, dim) in enumerate(info["palettes"]):
        count = int(np.prod(shape)) // dim
        k = 2**bits
        lut = luts[entry : entry + groups * k * dim].reshape(groups, k, dim).clone()
        if coded is not None and coded[index][0] == MASKED:
            size, where = coded[index][1], f"{str(path)!r} ({key})"
            codes = decode_masked_coded(
                coded[index][2:], indices[byte : byte + size], shape, lut, bits, where
            )
        elif coded is not None:
            size = coded[index][1]
            codes = decode_indices(
                coded[index][0], indices[byte : byte + size], bits, shape, count, str(path)
            )
        elif index in masked:
            layout, kept, mask_bytes = masked[index]
            size = masked_nbytes(bits, kept, mask_bytes)
            where = f"{str(path)!r} ({key})"
            data = indices[byte : byte + size]
            codes = decode_masked(layout, data, bits, lut, count // groups, kept, mask_bytes, where)
        else:
            size = packed_nbytes(count, bits)
            codes = unpack_bits(indices[byte : byte + size], bits, count)
        byte, entry = byte + size, entry + groups * k * dim
        palette = Palette(
            lut=lut, indices=torch.from_numpy(codes).reshape(groups, -1), bits=bits, shape=tuple(shape)
        )
        try:
            weight = palette.weight()
        except (RuntimeError, ValueError, IndexError) as exc:
            raise CheckpointError(f"{str(path)!r}: the palette of {key!r} is inconsistent: {exc}") from None
        state[key] = weight.to(reference[key].dtype)
        _remember(model, key, palette)
    state.update(_unpack_sparse(info.get("sparse", []), blobs, reference, str(path)))
    state.update(unpack_dense(dense_keys, info["dense"], blobs, reference))
    return state


def _remember(model: nn.Module, key: str, palette: Palette) -> None:
    prefix, _, name = key.rpartition(".")
    module = model.get_submodule(prefix)
    palettes = dict(getattr(module, PALETTES_ATTR, {}))
    palettes[name] = palette
    setattr(module, PALETTES_ATTR, palettes)


def packed_size_bytes(model: nn.Module, coding: str = "plain") -> int:
    """Bytes of the ``model.safetensors`` that :func:`netsculpt.save` would write for ``model``."""
    from safetensors.torch import save

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tensors, metadata = pack_state(model, state, coding)
    return len(save(tensors, metadata=metadata))
