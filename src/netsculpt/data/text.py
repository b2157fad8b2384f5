"""A byte-level text corpus for language-model runs without downloads.

The format is any UTF-8 text file, read as bytes (vocabulary 256, so no tokenizer is needed). The bytes
are cut into blocks of ``block`` bytes; block ``i`` goes to ``test`` when ``i % 20 == 19``, to
``held_out`` when ``i % 20 == 18`` and to ``train`` otherwise (90 / 5 / 5, interleaved through the file so
each split samples every part of it). Each split is then cut into non-overlapping windows of ``seq_len``
bytes, one training sequence each.

:func:`stdlib_docstrings` writes such a file from text on every machine with Python: the docstrings of
the interpreter's standard library (its top-level ``*.py`` modules in name order, each module's
docstring then its classes' and functions' in ``ast.walk`` order, separated by blank lines). The text
is fixed by the Python version (CPython 3.11.7: 168 modules, 3,925 docstrings, 901,478 bytes), so the
file name carries ``major.minor``.
"""

from __future__ import annotations

import ast
import sys
import sysconfig
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from netsculpt.errors import DataError

SPLITS = ("train", "held_out", "test")
PERIOD = 20  # of every 20 blocks: 18 train, 1 held-out, 1 test


def stdlib_docstrings(folder: str | Path) -> Path:
    """Write (once) the standard-library docstring corpus into ``folder``; returns the file's path."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    path = Path(folder) / f"stdlib-docstrings-{version}.txt"
    if path.exists():
        return path
    docs: list[str] = []
    for module in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            tree = ast.parse(module.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a test fixture with broken syntax or encoding: not prose
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        docs += [d for node in ast.walk(tree) if isinstance(node, kinds) and (d := ast.get_docstring(node))]
    if not docs:
        raise DataError(
            f"no docstrings found under {sysconfig.get_paths()['stdlib']}: is the stdlib installed?"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n\n".join(docs), encoding="utf-8")
    tmp.replace(path)
    return path


def byte_splits(path: str | Path, seq_len: int = 128, block: int = 4096) -> dict[str, torch.Tensor]:
    """``{"train", "held_out", "test"}`` -> ``(windows, seq_len)`` int64 byte ids (see the module doc)."""
    if seq_len < 2 or block < seq_len:
        raise DataError(f"seq_len={seq_len} must be >= 2 and block={block} >= seq_len")
    data = Path(path).read_bytes()
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8)
    parts: dict[str, list[torch.Tensor]] = {s: [] for s in SPLITS}
    for i, start in enumerate(range(0, raw.numel(), block)):
        r = i % PERIOD
        split = "test" if r == PERIOD - 1 else "held_out" if r == PERIOD - 2 else "train"
        chunk = raw[start : start + block]
        usable = chunk.numel() // seq_len * seq_len
        if usable:
            parts[split].append(chunk[:usable].view(-1, seq_len))
    out = {}
    for split, chunks in parts.items():
        if not chunks:
            raise DataError(
                f"{path}: {len(data)} bytes give no {split} window of {seq_len} bytes (the {split} split "
                f"takes 1 block of {block} in {PERIOD}); use a longer text or a smaller block"
            )
        out[split] = torch.cat(chunks).long()
    return out


class TokenWindows(Dataset):
    """Rows of a ``(windows, seq_len)`` id tensor; a DataLoader batches them as ``(batch, seq_len)`` ids,
    the plain language-modelling batch (``netsculpt.tasks.language_model``)."""

    def __init__(self, ids: torch.Tensor) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.ids[index]


def text_loaders(
    path: str | Path, *, seq_len: int = 128, batch_size: int = 16, block: int = 4096, seed: int = 0
) -> dict[str, DataLoader]:
    """DataLoaders over :func:`byte_splits`: ``train`` shuffled (seeded); ``held_out``, ``test`` in order."""
    splits = byte_splits(path, seq_len, block)
    gen = torch.Generator().manual_seed(seed)
    return {
        name: DataLoader(TokenWindows(ids), batch_size=batch_size, shuffle=name == "train", generator=gen)
        for name, ids in splits.items()
    }
