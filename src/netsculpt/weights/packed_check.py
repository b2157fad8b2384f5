"""Validation of a packed file's header and blobs against the rebuilt model, before anything is unpacked.

Every count, size and dtype is derived from the JSON header and the reference state dict, so a corrupt or
foreign file is refused with a message instead of producing wrong tensors or an IndexError.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from netsculpt.errors import CheckpointError
from netsculpt.weights.coding import MODELS
from netsculpt.weights.dense_blobs import DTYPES, layout_hash
from netsculpt.weights.masked_coding import KEPT_MODELS, MASK_MODELS, MASKED
from netsculpt.weights.packing import packed_nbytes
from netsculpt.weights.sparse_palette import PLAIN_LAYOUTS, masked_nbytes
from netsculpt.weights.sparse_store import MASK_LAYOUTS, PLAIN_INDICES, blobs_digest, file_digest

META_KEY = "netsculpt.packed"
# a plain (unpacked) file's SHA-256 (names, dtypes, shapes, bytes); packed files carry "digest" in META_KEY
DIGEST_KEY = "netsculpt.sha256"
# 2: sparse tensors, range-coded indices / masks (1 is written when there are none); 3: sparse palettes
# stored as mask + kept indices ("masked"; 1 or 2 is written when there are none, so such files are as
# before); 4: context-coded sparse palettes in the masked form (a "masked" entry in "coded"; written only
# when one is, so other coded files stay version 2)
FORMAT_VERSION = 4
MASKED_PLAIN_VERSION = 3

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
        "dense": {"type": "string", "pattern": "^[" + "".join(DTYPES) + "]*$"},
        "layout": {"type": "string"},
        "coded": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [
                    {"enum": [*MODELS, PLAIN_INDICES, MASKED]},
                    {"type": "integer", "minimum": 0},
                    {"enum": [*MASK_LAYOUTS, *MASK_MODELS]},
                    {"type": "integer", "minimum": 0},
                    {"type": "integer", "minimum": 0},
                    {"enum": list(KEPT_MODELS)},
                ],
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
                    {"enum": list(DTYPES)},
                    {"enum": list(MASK_LAYOUTS)},
                    {"type": "integer", "minimum": 0},
                    {"type": "integer", "minimum": 0},
                ],
                "items": False,
                "minItems": 5,
            },
        },
        "masked": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [
                    {"type": "integer", "minimum": 0},
                    {"enum": list(PLAIN_LAYOUTS)},
                    {"type": "integer", "minimum": 0},
                    {"type": "integer", "minimum": 0},
                ],
                "items": False,
                "minItems": 4,
            },
        },
        "checksum": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "digest": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
    "required": ["version", "palettes", "dense", "layout"],
}


def check_packed(info: Any, blobs: dict[str, Tensor], reference: dict[str, Tensor], where: str) -> list[str]:
    """Check every count, size and dtype of a packed file; returns the dense keys in stored order."""
    from netsculpt.jsoncheck import check_schema

    check_schema(info, _INFO_SCHEMA, f"{where!r} ({META_KEY})")
    # files since 2026-12-06 carry "digest" (metadata + blobs); version 2 before that "checksum" (blobs
    # only); version 1 before that nothing
    if "digest" in info:
        intact = info["digest"] == file_digest(blobs, info)
    elif "checksum" in info:
        intact = info["checksum"] == blobs_digest(blobs)
    else:
        intact = info["version"] == 1
    if not intact:
        raise CheckpointError(
            f"{where!r} is corrupt: its blobs do not match the checksum written with them; "
            "restore the file from a good copy"
        )
    coded = info.get("coded")
    if coded is not None and len(coded) != len(info["palettes"]):
        raise CheckpointError(f"{where!r}: {len(coded)} coded lengths for {len(info['palettes'])} palettes")
    masked = _masked(info, where)
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
        if coded is not None:
            size = coded[index][1]
            _check_coded(coded[index], info["version"], numel // dim, bits, f"{where!r} ({key})")
        elif index in masked:
            _layout, kept, mask_bytes = masked[index]
            if kept > numel // dim:
                raise CheckpointError(
                    f"{where!r}: the palette of {key!r} keeps {kept:,} of {numel // dim:,} points"
                )
            size = masked_nbytes(bits, kept, mask_bytes)
        else:
            size = packed_nbytes(numel // dim, bits)
        expect["palettes.indices"] = (torch.uint8, expect["palettes.indices"][1] + size)
        expect["palettes.luts"] = (torch.float16, expect["palettes.luts"][1] + groups * 2**bits * dim)
    _expect_sparse(info.get("sparse", []), reference, seen, expect, where)
    dense_keys = [k for k in reference if k not in seen]
    if len(dense_keys) != len(info["dense"]) or layout_hash(reference, dense_keys) != info["layout"]:
        raise CheckpointError(
            f"the packed weights in {where!r} were saved from a different architecture than the "
            "rebuilt model (state-dict names or shapes differ)"
        )
    for key, code in zip(dense_keys, info["dense"]):
        name = f"dense.{code}"
        expect[name] = (DTYPES[code], expect.get(name, (None, 0))[1] + reference[key].numel())
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
    return dense_keys


def _check_coded(entry: list[Any], version: int, points: int, bits: int, where: str) -> None:
    """A context-coded palette's entry: ``[model, bytes]``, or the masked form's six fields (version 4)."""
    if (entry[0] == MASKED) != (len(entry) == 6):
        raise CheckpointError(f"{where}: a coded palette entry {entry} has the wrong number of fields")
    if entry[0] != MASKED:
        return
    if version < 4:
        raise CheckpointError(f"{where}: a masked context-coded palette in a version {version} file")
    _, size, _layout, mask_bytes, kept, kept_model = entry
    if mask_bytes > size or kept > points:
        raise CheckpointError(
            f"{where}: a masked palette keeps {kept:,} of {points:,} points in {size} bytes"
        )
    if kept_model == PLAIN_INDICES and size - mask_bytes != packed_nbytes(kept, bits):
        raise CheckpointError(f"{where}: {size - mask_bytes} bytes of packed kept indices, not {kept:,}")


def _masked(info: dict[str, Any], where: str) -> dict[int, list[Any]]:
    """The masked (sparse) palettes by palette index: ``[layout, kept points, mask bytes]``."""
    entries = info.get("masked", [])
    if entries and ("coded" in info or info["version"] < 3):
        raise CheckpointError(
            f"{where!r}: masked palettes in a context-coded or version {info['version']} file"
        )
    masked = {entry[0]: entry[1:] for entry in entries}
    if len(masked) != len(entries) or any(index >= len(info["palettes"]) for index in masked):
        raise CheckpointError(f"{where!r}: masked palette indices {sorted(masked)} do not fit the palettes")
    return masked


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
        expect[name] = (DTYPES[code], expect.get(name, (None, 0))[1] + nonzero)
