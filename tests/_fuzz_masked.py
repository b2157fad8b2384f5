"""Fuzz cases for context-coded packed files with masked entries (packed format 4).

The seed is a LeNet-5 whose ``fc1`` is a sparse 4-bit palette (most points on its zero entry), saved with
``coding="context"``, so ``pack_state`` chooses the masked form for it: a coded zero / nonzero mask, then
the kept indices. A plain corruption only meets the file digest; here the digest is computed again after
each change, as an attacker (or a bug) writing a consistent file would, so the corruption reaches the
decoders: bytes flipped, inserted or zeroed inside the coded streams, and headers whose ``coded`` entries,
palette shapes, bit widths and version lie. Each case must raise ``CheckpointError`` / ``ConfigError`` or
load: the exact saved weights whenever the blobs are as saved; any other exception is a finding.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

MASKED = "masked"


def _sparse_palette_lenet() -> torch.nn.Module:
    """LeNet-5 with three sparse palettes, values from numpy's seeded generator (no k-means: the seed
    file is written in a second), each of which ``pack_state`` stores masked, in three forms: ``conv2``
    (rows repeat the row above: a ``column`` mask, ``context`` kept indices), ``fc1`` (inputs pruned more
    the further right: a ``column`` mask, ``order0`` kept indices), ``fc2`` (2-bit, 95 % zeros: an
    ``order0`` mask, ``context`` kept indices). ``masked_seed`` checks the forms are these."""
    import netsculpt as ns
    from netsculpt.weights.palette import Palette, set_palette_

    rng = np.random.default_rng(1)
    model = ns.create_model("lenet5").eval()

    def put(module: torch.nn.Module, codes: np.ndarray, bits: int = 4) -> None:
        values = np.r_[0.0, rng.uniform(-1, 1, 2**bits - 1)]
        lut = torch.tensor(values, dtype=torch.float16).reshape(1, 2**bits, 1)
        indices = torch.from_numpy(codes.astype(np.uint8).reshape(1, -1))
        set_palette_(module, "weight", Palette(lut, indices, bits, tuple(module.weight.shape)))

    shape = tuple(model.fc1.weight.shape)
    put(
        model.fc1,
        np.where(rng.random(shape) < np.linspace(0.4, 0.98, shape[1]), 0, rng.integers(1, 16, shape)),
    )
    shape = tuple(model.conv2.weight.shape)
    width = int(np.prod(shape[1:]))
    row = np.where(rng.random(width) < 0.7, 0, rng.integers(1, 16, width))
    rows = [np.where(rng.random(width) < 0.05, rng.integers(0, 16, width), row) for _ in range(shape[0])]
    put(model.conv2, np.stack(rows).reshape(shape))
    shape = tuple(model.fc2.weight.shape)
    put(model.fc2, np.where(rng.random(shape) < 0.95, 0, rng.integers(1, 4, shape)), bits=2)
    return model


FORMS = [["column", "context"], ["column", "order0"], ["order0", "context"]]  # conv2, fc1, fc2


def masked_seed(folder: Path) -> dict[str, Any]:
    import netsculpt as ns

    model = _sparse_palette_lenet()
    ns.save(model, folder, coding="context")
    files = {name: (folder / name).read_bytes() for name in ("netsculpt.json", "model.safetensors")}
    header, body = _parts(files["model.safetensors"])
    info = json.loads(header["__metadata__"]["netsculpt.packed"])
    forms = [[entry[0], entry[2], entry[5]] for entry in info["coded"]]
    assert info["version"] == 4 and forms == [[MASKED, *form] for form in FORMS], info["coded"]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return {"files": files, "header": header, "body": body, "info": info, "state": state}


def _parts(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _blobs(header: dict, body: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    text = json.dumps(header).encode()
    return load(struct.pack("<Q", len(text)) + text + body)


def _write(blobs: dict[str, torch.Tensor], info: Any) -> bytes:
    """A packed file of ``blobs`` and ``info`` with its digest computed again: consistent, lying or not."""
    from safetensors.torch import save

    from netsculpt.weights.sparse_store import file_digest

    if isinstance(info, dict):  # a mutation may leave another JSON value: written as it is
        info = dict(info)
        info["digest"] = file_digest(blobs, info)
    return save(blobs, metadata={"netsculpt.packed": json.dumps(info)})


def _span(info: dict[str, Any], row: int) -> tuple[int, int]:
    """Where palette ``row``'s bytes lie in ``palettes.indices``."""
    return sum(entry[1] for entry in info["coded"][:row]), info["coded"][row][1]


@st.composite
def _coded_bytes(draw: st.DrawFn, seed: dict[str, Any]) -> bytes:
    """The masked palette's mask / kept-index stream with bytes flipped, zeroed, inserted or cut; the
    entry's byte count follows an insertion or a cut when drawn so (else the header's count lies too)."""
    info, blobs = json.loads(json.dumps(seed["info"])), _blobs(seed["header"], seed["body"])
    row = draw(st.integers(0, len(info["coded"]) - 1))
    start, size = _span(info, row)
    data = bytearray(blobs["palettes.indices"].numpy().tobytes())
    mask_bytes = info["coded"][row][3]
    # the mask's bytes, the kept indices' bytes, or anywhere in the entry
    lo, hi = draw(st.sampled_from([(0, mask_bytes), (mask_bytes, size), (0, size)]))
    at = start + draw(st.integers(lo, max(lo, hi - 1)))
    op = draw(st.sampled_from(["flip", "flip", "zero", "insert", "cut"]))
    grown = 0
    if op == "flip":
        data[at] ^= draw(st.integers(1, 255))
    elif op == "zero":
        span = draw(st.integers(1, 16))
        data[at : at + span] = bytes(len(data[at : at + span]))
    elif op == "insert":
        extra = draw(st.binary(min_size=1, max_size=8))
        data[at:at] = extra
        grown = len(extra)
    else:
        span = min(draw(st.integers(1, 8)), start + size - at)
        del data[at : at + span]
        grown = -span
    if grown and draw(st.booleans()):
        entry = info["coded"][row]
        entry[1] += grown
        if at < start + mask_bytes and draw(st.booleans()):
            entry[3] += grown
    blobs["palettes.indices"] = torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()
    return _write(blobs, info)


def _lie_values(entry: list[Any]) -> list[Any]:
    """Other values for a field of ``entry``: its neighbours, other tags, other types, and its own value
    as a float (JSON Schema counts ``2132.0`` as an integer)."""
    whole = [v for v in entry if isinstance(v, int) and not isinstance(v, bool)]
    return [0, 1, -1, 3, 4, 5, 2**31, 2**62, 1.5, None, "", "column", "bitmap", "runs", "context",
            "order0", "plain", MASKED, True, [], {}, *[v + d for v in whole for d in (-4, -1, 1, 4)],
            *[float(v) for v in whole]]  # fmt: skip


@st.composite
def _lying_header(draw: st.DrawFn, seed: dict[str, Any]) -> bytes:
    """Unchanged blobs under a header whose masked entry, palette entry or version lies."""
    from tests._fuzz import mutated_json

    info, blobs = json.loads(json.dumps(seed["info"])), _blobs(seed["header"], seed["body"])
    row = draw(st.integers(0, len(info["coded"]) - 1))
    target = draw(st.sampled_from(["coded", "coded", "palette", "version", "json"]))
    if target == "coded":
        entry = info["coded"][row]
        for _ in range(draw(st.integers(1, 2))):
            entry[draw(st.integers(0, 5))] = draw(st.sampled_from(_lie_values(entry)))
        if draw(st.integers(0, 4)) == 0:
            del entry[draw(st.integers(0, len(entry) - 1))]
    elif target == "palette":
        palette = info["palettes"][row]  # [key, bits, shape, groups, dim]
        column = draw(st.integers(1, 4))
        if column == 2:
            shape = list(palette[2])
            i = draw(st.integers(0, len(shape) - 1))
            shape[i] = draw(st.sampled_from([0, 1, shape[i] // 2, shape[i] * 2, shape[i] + 1]))
            palette[2] = draw(st.sampled_from([shape, palette[2][::-1], [int(np.prod(palette[2]))]]))
        else:
            palette[column] = draw(st.sampled_from([0, 1, 2, 3, 5, 8, 9, -1, 2**40, float(palette[column])]))
    elif target == "version":
        info["version"] = draw(st.sampled_from([1, 2, 3, 5, 0, -1, "4", 4.0, 2.0, None]))
    else:
        return _write(blobs, json.loads(draw(mutated_json(info)), parse_constant=float))
    return _write(blobs, info)


def masked_cases(seed: dict[str, Any]) -> st.SearchStrategy[Callable[[Path], Any]]:
    from tests._fuzz import _packed_metadata, mutated_bytes

    data = seed["files"]["model.safetensors"]
    # blobs changed behind a recomputed digest make another valid file: a coded stream can decode to
    # other indices that end cleanly (found here: conv2 / fc2 loaded other weights), as a flipped
    # plain-packed index or table value does; no reader can tell, so those must only load or be refused.
    # With the blobs as saved (lying headers, or a digest left stale) only the saved weights may load.
    exact = st.one_of(_lying_header(seed), _lying_header(seed), mutated_bytes(data), _packed_metadata(data))
    return st.one_of(
        exact.map(lambda blob: _exact_or_refused(seed, blob, True)),
        _coded_bytes(seed).map(lambda blob: _exact_or_refused(seed, blob, False)),
    )


def _exact_or_refused(seed: dict[str, Any], blob: bytes, exact: bool) -> Callable[[Path], Any]:
    def write(case: Path) -> Callable[[], Any]:
        for name, data in {**seed["files"], "model.safetensors": blob}.items():
            (case / name).write_bytes(data)
        return lambda: _load_exact(case, seed["state"] if exact else None)

    return write


class WrongError(Exception):
    """A netsculpt error other than CheckpointError / ConfigError, or other weights: a finding."""


def _load_exact(case: Path, state: dict[str, torch.Tensor] | None) -> None:
    import netsculpt as ns
    from netsculpt.errors import CheckpointError, ConfigError, NetsculptError

    try:
        loaded = ns.load(case).state_dict()
    except (CheckpointError, ConfigError):
        raise
    except NetsculptError as exc:
        raise WrongError(f"{type(exc).__name__}: {exc}") from None
    if state is None:
        return
    differ = [k for k in state if k not in loaded or not torch.equal(loaded[k], state[k])]
    if differ or loaded.keys() != state.keys():
        raise WrongError(f"loaded other weights: {differ[:3]}")
