"""Sparse tensors and coded palette indices inside the packed ``model.safetensors``.

A float tensor (2-D or more) with enough zeros is stored as a mask plus its nonzero values (in the
tensor's stored dtype: float16 when exact). The mask is whichever is smaller of a bitmap (1 bit a weight)
and run lengths (LEB128 varints of alternating zero / nonzero runs, starting with zeros); with
``coding="context"`` it is range-coded instead (:mod:`netsculpt.weights.coding`), as are the palette
indices. A SHA-256 of the packing metadata and every blob is stored, so a corrupted file fails on load
rather than giving wrong weights.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch
from torch import Tensor

from netsculpt.errors import CheckpointError
from netsculpt.weights.coding import best_encoding, decode_grid
from netsculpt.weights.packing import pack_bits, packed_nbytes, unpack_bits

CODINGS = ("plain", "context")
PLAIN_INDICES = "plain"  # a coded file's palette stored bit-packed, where the coder would not save a byte
MASK_LAYOUTS = ("bitmap", "runs", "context", "order0")


def grid_shape(shape: list[int] | tuple[int, ...], count: int) -> tuple[int, int]:
    """The 2-D view a tensor's symbols are coded in: output channels x the rest when that divides."""
    rows = int(shape[0]) if shape and count % max(int(shape[0]), 1) == 0 else 1
    return rows, count // rows


def _varints(values: np.ndarray) -> np.ndarray:
    out = bytearray()
    for v in values.tolist():
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return np.frombuffer(bytes(out), dtype=np.uint8)


def _read_varints(data: np.ndarray) -> np.ndarray:
    values, value, shift = [], 0, 0
    for byte in data.tolist():
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value, shift = 0, 0
    if shift:
        raise CheckpointError("a run-length mask ends inside a number: the file is corrupt")
    return np.asarray(values, dtype=np.int64)


def _runs(flat: np.ndarray) -> np.ndarray:
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    lengths = np.diff(edges)
    if flat.size and flat[0]:
        lengths = np.concatenate([[0], lengths])  # runs alternate starting with zeros
    return lengths


def encode_mask(mask: np.ndarray, shape: tuple[int, ...], coding: str) -> tuple[str, np.ndarray]:
    """``(layout, bytes)`` of a bool mask: the smaller plain form, or the range-coded one."""
    flat = mask.reshape(-1)
    bitmap = pack_bits(flat.astype(np.uint8), 1)
    runs = _varints(_runs(flat))
    plain = ("runs", runs) if runs.size < bitmap.size else ("bitmap", bitmap)
    if coding == "context":  # the coder's adaptive counts cost bytes a near-uniform mask never repays
        model, words = best_encoding(flat.reshape(grid_shape(shape, flat.size)).astype(np.uint8), 2)
        if words.nbytes < plain[1].size:
            return model, words.view(np.uint8)
    return plain


def decode_mask(layout: str, data: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    count = int(np.prod(shape))
    if layout == "bitmap":
        if data.size != packed_nbytes(count, 1):
            raise CheckpointError(
                f"{where}: the bitmap holds {data.size} bytes, expected {packed_nbytes(count, 1)}"
            )
        return unpack_bits(data, 1, count).astype(bool)
    if layout == "runs":
        lengths = _read_varints(data)
        if lengths.sum() != count:
            raise CheckpointError(f"{where}: the run lengths cover {lengths.sum()} values, expected {count}")
        return np.repeat(np.arange(lengths.size) % 2 == 1, lengths)
    if data.size % 4:
        raise CheckpointError(f"{where}: coded data is not a whole number of 32-bit words")
    rows, cols = grid_shape(shape, count)
    return decode_grid(data.view(np.uint32), rows, cols, 2, layout).reshape(-1).astype(bool)


def encode_indices(indices: np.ndarray, bits: int, shape: list[int]) -> tuple[str, np.ndarray]:
    """Range-code one palette's indices: ``(model, bytes)``; ``("plain", bit-packed)`` when coding would
    not save a byte (indices spread evenly over the palette: shufflenet at 2 bits coded 1 % larger)."""
    flat = indices.reshape(-1)
    model, words = best_encoding(flat.reshape(grid_shape(shape, flat.size)), 2**bits)
    packed = pack_bits(flat, bits)
    return (PLAIN_INDICES, packed) if packed.size <= words.nbytes else (model, words.view(np.uint8))


def decode_indices(
    model: str, data: np.ndarray, bits: int, shape: list[int], count: int, where: str
) -> np.ndarray:
    if model == PLAIN_INDICES:
        if data.size != packed_nbytes(count, bits):
            raise CheckpointError(
                f"{where}: packed indices hold {data.size} bytes, expected {packed_nbytes(count, bits)}"
            )
        return unpack_bits(data, bits, count)
    if data.size % 4:
        raise CheckpointError(f"{where}: coded data is not a whole number of 32-bit words")
    rows, cols = grid_shape(shape, count)
    codes = decode_grid(data.view(np.uint32), rows, cols, 2**bits, model).reshape(-1)
    return codes


def worth_sparse(tensor: Tensor) -> bool:
    """Float tensors of 2+ dims with at least a quarter zeros (below that a mask rarely pays)."""
    if not tensor.is_floating_point() or tensor.dim() < 2 or tensor.numel() < 64:
        return False
    return float((tensor == 0).sum()) >= 0.25 * tensor.numel()


def blobs_digest(blobs: dict[str, Tensor]) -> str:
    """The first checksum (``checksum``, files written before 2026-12-06): names and bytes only. Still
    verified on those files; it misses a flipped bit in the header (a dtype, a palette's bit width)."""
    digest = hashlib.sha256()
    for name in sorted(blobs):
        digest.update(name.encode())
        digest.update(blobs[name].detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_digest(tensors: dict[str, Tensor], info: dict[str, Any] | None = None) -> str:
    """SHA-256 over everything that decides the loaded weights: the packing metadata ``info`` (without
    its own ``digest``), and each tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    if info is not None:
        rest = {k: v for k, v in info.items() if k != "digest"}
        digest.update(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
