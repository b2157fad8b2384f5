"""Damaged torch files: a checkpoint whose bytes changed after it was written, or that was cut off, is a
CheckpointError that says so and how to recover; it is never loaded as silently wrong tensors."""

from __future__ import annotations

import pytest
import torch

from netsculpt.errors import CheckpointError
from netsculpt.fileio import safe_torch_load, torch_save
from netsculpt.train.checkpoint import load_checkpoint


def _write(tmp_path):
    path = tmp_path / "checkpoint.pt"
    # a training checkpoint's shape: a marker, metadata and a few tensors large enough to hit with a flip
    torch_save(path, {"w": torch.arange(4096, dtype=torch.float32), "b": torch.ones(16), "epoch": 3})
    return path


def _flip_inside_tensor(path, value: torch.Tensor) -> None:
    """Overwrite 8 bytes in the middle of ``value``'s stored data, as a bad sector or copy would."""
    raw = bytearray(path.read_bytes())
    at = raw.find(value.numpy().tobytes()[:64]) + 2048
    assert at > 2048, "the tensor's bytes should be stored uncompressed in the archive"
    raw[at : at + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_is_refused_not_loaded_as_wrong_weights(tmp_path) -> None:
    path = _write(tmp_path)
    _flip_inside_tensor(path, torch.arange(4096, dtype=torch.float32))
    with pytest.raises(CheckpointError, match=r"is damaged: .* fails its CRC-32 checksum.*delete it"):
        safe_torch_load(path)


def test_a_damaged_training_checkpoint_names_the_file(tmp_path) -> None:
    path = _write(tmp_path)
    _flip_inside_tensor(path, torch.arange(4096, dtype=torch.float32))
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt' is damaged"):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_cut_off_file_says_it_is_truncated(tmp_path, keep: float) -> None:
    path = _write(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(CheckpointError, match=r"is truncated or damaged.*restore the file"):
        safe_torch_load(path)


def test_an_intact_file_still_loads(tmp_path) -> None:
    path = _write(tmp_path)
    assert torch.equal(safe_torch_load(path)["w"], torch.arange(4096, dtype=torch.float32))


def test_every_single_byte_change_is_refused_or_harmless(tmp_path) -> None:
    """Each bit of each byte of a small archive flipped in turn (XOR with 0x01 / 0x10 / 0x80): a change in
    the zip headers escaped as a raw NotImplementedError / UnicodeDecodeError, and the directory bit set on
    a tensor's entry made torch.load return zeros or stale memory with every CRC-32 intact."""
    import io

    want = {"w": torch.arange(4.0), "b": torch.ones(2)}
    buf = io.BytesIO()
    torch.save(want, buf)
    good, path = buf.getvalue(), tmp_path / "checkpoint.pt"
    wrong = []
    for at in range(len(good)):
        for mask in (0x01, 0x10, 0x80):
            raw = bytearray(good)
            raw[at] ^= mask
            path.write_bytes(bytes(raw))
            try:
                got = safe_torch_load(path)
            except CheckpointError:
                continue
            if set(got) != set(want) or not all(torch.equal(got[k], want[k]) for k in want):
                wrong.append((at, mask))
    assert not wrong, f"byte changes loaded as wrong values: {wrong[:5]}"


def test_an_entry_marked_as_a_folder_is_refused(tmp_path) -> None:
    path = _write(tmp_path)
    raw = bytearray(path.read_bytes())
    entry = raw.find(b"PK\x01\x02", raw.find(b"PK\x01\x02") + 4)  # a central-directory entry after data.pkl
    raw[entry + 38] |= 0x10  # its external attributes: the MS-DOS directory bit
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"is damaged: its part .* is marked as a folder"):
        safe_torch_load(path)
