"""Context coding of sparse palettes with and without the masked form, side by side, on saved models.

Re-codes the clustered LeNet-5 models that ``benchmarks/sparsity.py --parts lenet --dkm 1 --cache DIR``
stores under ``DIR`` (``sparse-*-DKM4-bit``, ``sparse-*-k-means4-bit``): the plain file, the context file
as netsculpt wrote it before the masked form (the form switched off), and the context file now. Per
palette, bits per index of both context forms (data only, as ``tensor_bits`` counts them) and the form
chosen. Every new file is reloaded and compared bit for bit before its numbers are printed.

    PYTHONPATH=src:benchmarks python benchmarks/context_masked.py --cache DIR
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from unittest import mock

import torch
from _tables import FAILURES, bar, table

import netsculpt as ns
from netsculpt.weights import iter_palettes
from netsculpt.weights.storage import coded_palette, packed_size_bytes


def _without_masked():
    """netsculpt's context coding as it was before the masked form (that form never offered)."""
    return mock.patch("netsculpt.weights.storage.encode_masked_coded", lambda palette: None)


def _reloads_exactly(model: torch.nn.Module) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        ns.save(model, tmp, coding="context")
        loaded = ns.load(tmp)
        again = Path(tmp) / "again"
        ns.save(loaded, again, coding="context")
        same_bytes = (Path(tmp) / "model.safetensors").read_bytes() == (
            again / "model.safetensors"
        ).read_bytes()
    state, other = model.state_dict(), loaded.state_dict()
    mine, theirs = dict(iter_palettes(model)), dict(iter_palettes(loaded))
    return (
        same_bytes
        and all(torch.equal(state[k], other[k]) for k in state)
        and all(
            torch.equal(p.indices, theirs[k].indices) and torch.equal(p.lut, theirs[k].lut)
            for k, p in mine.items()
        )
    )


def recode(name: str, model: torch.nn.Module) -> None:
    plain = packed_size_bytes(model, "plain")
    with _without_masked():
        before = packed_size_bytes(model, "context")
        old = {key: coded_palette(p)[1].size for key, p in iter_palettes(model)}
    after = packed_size_bytes(model, "context")
    rows, totals = [], [0, 0, 0]
    for key, palette in iter_palettes(model):
        entry, data = coded_palette(palette)
        n = palette.indices.numel()
        form = "context, " + entry[0] if entry[0] != "masked" else f"masked: {entry[2]} mask, {entry[5]} kept"
        rows.append((key, f"{n:,}", f"{old[key] * 8 / n:.3f}", f"{data.size * 8 / n:.3f}", form))
        totals = [totals[0] + n, totals[1] + old[key], totals[2] + data.size]
    n, was, now = totals
    rows.append(("total", f"{n:,}", f"{was * 8 / n:.3f}", f"{now * 8 / n:.3f}", ""))
    table(
        f"{name}: bits per palette index, context coding",
        ("palette", "indices", "before", "now", "form"),
        rows,
    )
    table(
        f"{name}: the whole file (bytes)",
        ("plain", "context before", "context now", "change"),
        [(f"{plain:,}", f"{before:,}", f"{after:,}", f"{after - before:+,} ({after / before - 1:+.2%})")],
    )
    print(bar(after <= before, f"{name}: context file now {after:,} <= before {before:,}"))
    print(bar(after <= plain, f"{name}: context file {after:,} <= plain {plain:,}"))
    print(bar(_reloads_exactly(model), f"{name}: reloads bit for bit, re-saved to identical bytes"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", required=True, help="the --cache folder of benchmarks/sparsity.py")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folders = sorted(p for p in Path(args.cache).glob("sparse-*-*4-bit") if (p / "netsculpt.json").is_file())
    if not folders:
        print(f"no clustered models under {args.cache}; run benchmarks/sparsity.py --cache there first")
        return 1
    for folder in folders:
        recode(folder.name, ns.load(folder))
    print("\nmissed:" if FAILURES else "\nall bars met", *FAILURES, sep="\n  ")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
