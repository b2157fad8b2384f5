"""Packed storage of palettized models inside the ordinary ``model.safetensors`` file.

A model with palettized layers is written as a handful of blobs instead of one tensor per name:

* ``palettes.indices`` (uint8): every palettized tensor's indices, bit-packed at its own bit width;
* ``palettes.luts`` (float16): every lookup table, ``(groups, 2**bits, vector_dim)`` each;
* ``dense.<dtype>``: all other state-dict tensors, flattened and concatenated per stored dtype, in the
  order of the model's state dict.

The header metadata (``netsculpt.packed``, JSON) lists the palettized keys with their layout and one
dtype code per dense tensor. Dense tensors need no names: :func:`netsculpt.load` rebuilds the model
first, so its state dict supplies names, order and shapes (a hash of them is checked). Per-tensor
safetensors headers cost ~80 bytes each, which on ResNet-20 at 4 bits is 8% of the file. A float32
tensor whose values are all exact in float16 (see :func:`round_dense_`) is stored as float16; every
tensor reloads bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.weights.coding import MODELS
from netsculpt.weights.packing import pack_bits, packed_nbytes, unpack_bits
from netsculpt.weights.palette import PALETTES_ATTR, Palette, iter_palettes
from netsculpt.weights.sparse_store import (
    CODINGS,
    MASK_LAYOUTS,
    blobs_digest,
    decode_indices,
    decode_mask,
    encode_indices,
    encode_mask,
    worth_sparse,
)

META_KEY = "netsculpt.packed"
FORMAT_VERSION = 2  # 2: sparse tensors, range-coded indices / masks, checksum (1 is written when none)
_CODES = {
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
_DTYPES = {code: dtype for dtype, code in _CODES.items()}


def round_dense_(model: nn.Module, dense_dtype: str = "float32") -> nn.Module:
    """With ``"float16"``, round every float tensor that is not palettized to fp16 values, in place."""
    if dense_dtype not in ("float32", "float16"):
        raise ConfigError(f"dense_dtype must be 'float32' or 'float16', got {dense_dtype!r}")
    if dense_dtype == "float32":
        return model
    palettized = {key for key, _ in iter_palettes(model)}
    with torch.no_grad():
        for key, tensor in model.state_dict(keep_vars=True).items():
            if key not in palettized and tensor.is_floating_point() and tensor.dtype != torch.float16:
                tensor.copy_(tensor.to(torch.float16).to(tensor.dtype))
    return model


def _stored_dtype(tensor: Tensor) -> torch.dtype:
    if tensor.dtype == torch.float32 and torch.equal(tensor.to(torch.float16).float(), tensor):
        return torch.float16
    if tensor.dtype not in _CODES:
        raise CheckpointError(f"cannot pack a tensor of dtype {tensor.dtype}")
    return tensor.dtype


def _layout_hash(state: dict[str, Tensor], keys: list[str]) -> str:
    text = ";".join(f"{k}:{tuple(state[k].shape)}:{state[k].dtype}" for k in keys)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pack_state(
    model: nn.Module, state: dict[str, Tensor], coding: str = "plain"
) -> tuple[dict[str, Tensor], dict[str, str] | None]:
    """The tensors and header metadata to write for ``model`` (``state``: its state dict).

    A model without palettes or sparse tensors is returned as is with no metadata: the file stays a
    plain state dict. ``coding="context"`` range-codes palette indices and sparsity masks.
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
            warnings.warn(
                f"{key} changed after it was palettized; it is saved as a dense tensor", stacklevel=3
            )
    packed = {key for key, _ in palettes}
    sparse_keys = [k for k in state if k not in packed and worth_sparse(state[k])]
    if not palettes and not sparse_keys:
        return state, None
    tensors: dict[str, Tensor] = {}
    info: dict[str, Any] = {"version": 1 if coding == "plain" and not sparse_keys else FORMAT_VERSION}
    info["palettes"], coded = _pack_palettes(palettes, coding, tensors)
    if coding == "context":
        info["coded"] = coded
    if sparse_keys:
        info["sparse"] = _pack_sparse(state, sparse_keys, coding, tensors)
    dense_keys = [k for k in state if k not in packed and k not in set(sparse_keys)]
    codes, blobs = [], {}
    for key in dense_keys:
        dtype = _stored_dtype(state[key])
        codes.append(_CODES[dtype])
        blobs.setdefault(dtype, []).append(state[key].detach().reshape(-1).to(dtype))
    tensors.update({f"dense.{_CODES[d]}": torch.cat(parts).contiguous() for d, parts in blobs.items()})
    info["dense"], info["layout"] = "".join(codes), _layout_hash(state, dense_keys)
    if info["version"] > 1:
        info["checksum"] = blobs_digest(tensors)
    return tensors, {META_KEY: json.dumps(info, separators=(",", ":"))}


def _pack_palettes(
    palettes: list[tuple[str, Palette]], coding: str, tensors: dict[str, Tensor]
) -> tuple[list[list[Any]], list[list[Any]]]:
    index_blobs, luts, entries, coded = [], [], [], []
    for key, palette in palettes:
        if coding == "context":
            model, data = encode_indices(palette.indices.numpy(), palette.bits, list(palette.shape))
            coded.append([model, int(data.size)])
        else:
            data = pack_bits(palette.indices.numpy(), palette.bits)
        index_blobs.append(data)
        luts.append(palette.lut.reshape(-1))
        entries.append([key, palette.bits, list(palette.shape), palette.lut.shape[0], palette.lut.shape[-1]])
    if palettes:
        tensors["palettes.indices"] = torch.from_numpy(np.concatenate(index_blobs))
        tensors["palettes.luts"] = torch.cat(luts).contiguous()
    return entries, coded


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
        dtype = _stored_dtype(kept) if kept.numel() else tensor.dtype
        if dtype not in _CODES:
            raise CheckpointError(f"cannot pack {key!r}: dtype {tensor.dtype}")
        values.setdefault(dtype, []).append(kept.to(dtype))
        masks.append(data)
        entries.append([key, _CODES[dtype], layout, int(kept.numel()), int(data.size)])
    tensors["sparse.masks"] = torch.from_numpy(np.concatenate(masks))
    for dtype, parts in values.items():
        tensors[f"sparse.{_CODES[dtype]}"] = torch.cat(parts).contiguous()
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


_INFO_SCHEMA = {
    "type": "object",
    "properties": {
        "version": {"type": "integer", "minimum": 1, "maximum": FORMAT_VERSION},
        "palettes": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [
                    {"type": "string"},
                    {"type": "integer", "minimum": 1, "maximum": 8},
                    {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 8,
                        "items": {"type": "integer", "minimum": 1},
                    },
                    {"type": "integer", "minimum": 1},
                    {"type": "integer", "minimum": 1},
                ],
                "items": False,
                "minItems": 5,
            },
        },
        "dense": {"type": "string", "pattern": "^[" + "".join(_DTYPES) + "]*$"},
        "layout": {"type": "string"},
        "coded": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [{"enum": list(MODELS)}, {"type": "integer", "minimum": 0}],
                "items": False,
                "minItems": 2,
            },
        },
        "sparse": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [
                    {"type": "string"},
                    {"enum": list(_DTYPES)},
                    {"enum": list(MASK_LAYOUTS)},
                    {"type": "integer", "minimum": 0},
                    {"type": "integer", "minimum": 0},
                ],
                "items": False,
                "minItems": 5,
            },
        },
        "checksum": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
    "required": ["version", "palettes", "dense", "layout"],
}


def _check_packed(info: Any, blobs: dict[str, Tensor], reference: dict[str, Tensor], where: str) -> None:
    """Every count, size and dtype of a packed file checked against the rebuilt model before unpacking."""
    from netsculpt.jsoncheck import check_schema

    check_schema(info, _INFO_SCHEMA, f"{where!r} ({META_KEY})")
    if info["version"] > 1 and info.get("checksum") != blobs_digest(blobs):
        raise CheckpointError(
            f"{where!r} is corrupt: its blobs do not match the checksum written with them; "
            "restore the file from a good copy"
        )
    coded = info.get("coded")
    if coded is not None and len(coded) != len(info["palettes"]):
        raise CheckpointError(f"{where!r}: {len(coded)} coded lengths for {len(info['palettes'])} palettes")
    expect: dict[str, tuple[torch.dtype, int]] = {}
    if info["palettes"] or info["version"] == 1:
        expect = {"palettes.indices": (torch.uint8, 0), "palettes.luts": (torch.float16, 0)}
    seen: set[str] = set()
    for index, (key, bits, shape, groups, dim) in enumerate(info["palettes"]):
        ref = reference.get(key)
        if ref is None or key in seen:
            raise CheckpointError(
                f"{where!r}: the saved palette {key!r} has no (or a second) tensor in the rebuilt model"
            )
        numel = int(np.prod(shape))
        if list(ref.shape) != list(shape) or numel % dim or (numel // dim) % groups or shape[0] % groups:
            raise CheckpointError(
                f"{where!r}: the palette of {key!r} (shape {shape}, {groups} groups, vectors of {dim}) does "
                f"not fit the rebuilt model's tensor of shape {list(ref.shape)}"
            )
        seen.add(key)
        size = coded[index][1] if coded is not None else packed_nbytes(numel // dim, bits)
        expect["palettes.indices"] = (torch.uint8, expect["palettes.indices"][1] + size)
        expect["palettes.luts"] = (torch.float16, expect["palettes.luts"][1] + groups * 2**bits * dim)
    _expect_sparse(info.get("sparse", []), reference, seen, expect, where)
    dense_keys = [k for k in reference if k not in seen]
    if len(dense_keys) != len(info["dense"]) or _layout_hash(reference, dense_keys) != info["layout"]:
        raise CheckpointError(
            f"the packed weights in {where!r} were saved from a different architecture than the "
            "rebuilt model (state-dict names or shapes differ)"
        )
    for key, code in zip(dense_keys, info["dense"]):
        name = f"dense.{code}"
        expect[name] = (_DTYPES[code], expect.get(name, (None, 0))[1] + reference[key].numel())
    for name, (dtype, length) in expect.items():
        blob = blobs.get(name)
        if blob is None or blob.dtype != dtype or blob.dim() != 1 or blob.numel() != length:
            found = "missing" if blob is None else f"{blob.dtype} of shape {list(blob.shape)}"
            raise CheckpointError(
                f"{where!r}: blob {name!r} should be {length:,} values of {dtype}, found {found}"
            )
    extra = sorted(set(blobs) - set(expect))
    if extra:
        raise CheckpointError(f"{where!r}: unexpected blob {extra[0]!r} in a packed file")


def _expect_sparse(
    entries: list[list[Any]],
    reference: dict[str, Tensor],
    seen: set[str],
    expect: dict[str, tuple[torch.dtype, int]],
    where: str,
) -> None:
    for key, code, _layout, nonzero, nbytes in entries:
        ref = reference.get(key)
        if ref is None or key in seen or nonzero > ref.numel() or ref.dim() < 2:
            raise CheckpointError(
                f"{where!r}: the sparse tensor {key!r} ({nonzero:,} nonzeros) does not fit the rebuilt model"
            )
        seen.add(key)
        expect["sparse.masks"] = (torch.uint8, expect.get("sparse.masks", (None, 0))[1] + nbytes)
        name = f"sparse.{code}"
        expect[name] = (_DTYPES[code], expect.get(name, (None, 0))[1] + nonzero)


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
    _check_packed(info, blobs, reference, str(path))
    state: dict[str, Tensor] = {}
    coded = info.get("coded")
    if info["palettes"]:
        indices, luts = blobs["palettes.indices"].numpy(), blobs["palettes.luts"]
    byte, entry = 0, 0
    for index, (key, bits, shape, groups, dim) in enumerate(info["palettes"]):
        count = int(np.prod(shape)) // dim
        k = 2**bits
        if coded is not None:
            size = coded[index][1]
            codes = decode_indices(
                coded[index][0], indices[byte : byte + size], bits, shape, count, str(path)
            )
        else:
            size = packed_nbytes(count, bits)
            codes = unpack_bits(indices[byte : byte + size], bits, count)
        lut = luts[entry : entry + groups * k * dim].reshape(groups, k, dim).clone()
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
    offsets: dict[str, int] = {}
    dense_keys = [k for k in reference if k not in state]
    for key, code in zip(dense_keys, info["dense"]):
        blob, start = blobs[f"dense.{code}"], offsets.get(code, 0)
        n = reference[key].numel()
        state[key] = blob[start : start + n].reshape(reference[key].shape).to(reference[key].dtype)
        offsets[code] = start + n
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
