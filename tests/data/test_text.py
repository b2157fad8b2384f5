"""The byte-level text corpus (``netsculpt.data.text``): block-interleaved splits, windows, loaders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netsculpt.data.text import byte_splits, stdlib_docstrings, text_loaders
from netsculpt.errors import DataError
from netsculpt.tasks.language_model import token_batch_kind


def test_splits_interleave_blocks_and_keep_the_bytes(tmp_path: Path) -> None:
    """40 blocks of 64 bytes: blocks 18 and 38 are held out, 19 and 39 are test, the rest train; every
    window is the file's bytes in order."""
    line = "{:02d} The quick brown fox jumps over the lazy dog" + "." * 64
    text = "".join(line.format(i)[:63] + "\n" for i in range(40))
    assert len(text.encode()) == 40 * 64
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    splits = byte_splits(path, seq_len=32, block=64)
    assert {k: tuple(v.shape) for k, v in splits.items()} == {
        "train": (72, 32),
        "held_out": (4, 32),
        "test": (4, 32),
    }
    decode = lambda rows: bytes(rows.flatten().tolist()).decode()  # noqa: E731
    assert decode(splits["test"]) == text[19 * 64 : 20 * 64] + text[39 * 64 : 40 * 64]
    assert decode(splits["held_out"]).startswith("18 The quick")
    assert decode(splits["train"]).startswith("00 The quick") and "19 The" not in decode(splits["train"])
    loaders = text_loaders(path, seq_len=32, batch_size=8, block=64)
    batch = next(iter(loaders["train"]))
    assert batch.shape == (8, 32) and batch.dtype == torch.int64 and token_batch_kind(batch) == "ids"


def test_too_short_a_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("only a few bytes", encoding="utf-8")
    with pytest.raises(DataError, match="no held_out window"):
        byte_splits(path, seq_len=8, block=8)


def test_stdlib_docstrings_are_written_once(tmp_path: Path) -> None:
    path = stdlib_docstrings(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert len(text) > 100_000 and "Return" in text  # hundreds of kB of English prose on any CPython 3
    mtime = path.stat().st_mtime_ns
    assert stdlib_docstrings(tmp_path) == path and path.stat().st_mtime_ns == mtime
