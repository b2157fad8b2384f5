"""Reading a packed model file's header and blobs, and comparing two models bit for bit, palettes included:
what the sparse-palette and masked-context storage tests check every round trip with."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from netsculpt.weights import iter_palettes


def read_packed(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(netsculpt.packed header, {blob name: tensor})`` of ``folder/model.safetensors``."""
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        info = json.loads(f.metadata()["netsculpt.packed"])
        return info, {k: f.get_tensor(k).clone() for k in f.keys()}  # noqa: SIM118 (not mmap views)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Every state-dict tensor equal in dtype and bits, and every palette's indices and table equal."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key
    pa, pb = dict(iter_palettes(a)), dict(iter_palettes(b))
    assert pa.keys() == pb.keys()
    for key, palette in pa.items():
        assert torch.equal(palette.indices, pb[key].indices) and torch.equal(palette.lut, pb[key].lut), key
