"""The masked form's coders alone: exact round trips for every mask / kept-index model and edge case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netsculpt.weights.masked_coding import (
    KEPT_MODELS,
    decode_column_mask,
    decode_masked_coded,
    encode_column_mask,
    encode_masked_coded,
)
from netsculpt.weights.palette import Palette


def test_column_mask_coder_is_exact_and_reads_dead_inputs() -> None:
    rng = np.random.default_rng(0)
    alive = rng.random(200) < 0.3  # inputs most filters prune: the column context's case
    mask = (rng.random((60, 200)) < np.where(alive, 0.5, 0.02)) & (rng.random((60, 200)) < 0.9)
    words = encode_column_mask(mask)
    assert np.array_equal(decode_column_mask(words, 60, 200), mask)
    order0 = -(mask.mean() * np.log2(mask.mean()) + (1 - mask.mean()) * np.log2(1 - mask.mean()))
    assert words.nbytes * 8 < 0.8 * order0 * mask.size  # the columns' shares are worth >= 20 %


@pytest.mark.parametrize("kept_model", KEPT_MODELS)
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_groups_with_and_without_zero_vectors_every_kept_model(kept_model: str, bits: int) -> None:
    rng = np.random.default_rng(bits)
    k = 2**bits
    lut = torch.tensor(rng.uniform(0.5, 1, (4, k, 2)), dtype=torch.float16)  # 4 groups, 2-vectors
    lut[0, k - 1], lut[2, 0], lut[3, 1] = 0.0, 0.0, 0.0  # group 1 has no zero entry
    codes = rng.integers(0, k, (4, 144)).astype(np.uint8)
    for group, zero in ((0, k - 1), (2, 0), (3, 1)):
        codes[group, rng.random(144) < 0.9] = zero
    palette = Palette(lut, torch.from_numpy(codes), bits, (16, 8, 3, 3))
    entry, data = encode_masked_coded(palette, kept_models=(kept_model,))
    assert entry[3] == kept_model  # group 1 has no zero entry: the kept points keep all 2**bits symbols
    decoded = decode_masked_coded(entry, data, [16, 8, 3, 3], lut, bits, "t")
    assert np.array_equal(decoded, codes.reshape(-1))


def test_one_nonzero_entry_left_is_stored_plain() -> None:
    lut = torch.tensor([[[0.0], [0.5]]], dtype=torch.float16)
    codes = (torch.rand(1, 1152, generator=torch.Generator().manual_seed(0)) < 0.1).to(torch.uint8)
    palette = Palette(lut, codes, 1, (16, 8, 3, 3))
    entry, data = encode_masked_coded(palette, kept_models=("context",))
    assert entry[3] == "plain" and data.size == entry[1] + (int(codes.sum()) + 7) // 8
    assert np.array_equal(
        decode_masked_coded(entry, data, [16, 8, 3, 3], lut, 1, "t"), codes.reshape(-1).numpy()
    )


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_every_point_on_the_zero_entry_or_none(share: float) -> None:
    lut = torch.tensor([[[0.0], [0.5], [1.0], [1.5]]], dtype=torch.float16)
    codes = torch.full((1, 1152), 0 if share else 2, dtype=torch.uint8)
    for model in KEPT_MODELS:
        entry, data = encode_masked_coded(Palette(lut, codes, 2, (16, 8, 3, 3)), kept_models=(model,))
        assert entry[2] == int(codes.ne(0).sum())
        decoded = decode_masked_coded(entry, data, [16, 8, 3, 3], lut, 2, "t")
        assert np.array_equal(decoded, codes.reshape(-1).numpy())


def test_a_palette_without_zero_has_no_masked_form() -> None:
    lut = torch.tensor([[[0.5], [1.0], [1.5], [2.0]]], dtype=torch.float16)
    codes = torch.zeros(1, 1152, dtype=torch.uint8)
    assert encode_masked_coded(Palette(lut, codes, 2, (16, 8, 3, 3))) is None
