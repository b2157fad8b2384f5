"""Bit-packing of palette indices: exact round trips at every width, dense sizes, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from netsculpt.errors import ConfigError
from netsculpt.weights.packing import pack_bits, packed_nbytes, unpack_bits


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 1001])  # empty, sub-byte, byte-aligned, odd sizes
def test_round_trip_every_width_and_odd_sizes(bits: int, count: int) -> None:
    rng = np.random.default_rng(bits * 1000 + count)
    values = rng.integers(0, 2**bits, size=count, dtype=np.uint8)
    packed = pack_bits(values, bits)
    assert packed.dtype == np.uint8
    assert packed.size == (count * bits + 7) // 8 == packed_nbytes(count, bits)  # no padding beyond a byte
    assert np.array_equal(unpack_bits(packed, bits, count), values)


def test_extreme_values_and_bit_order() -> None:
    # 3-bit indices 1, 7: stream LSB-first is 100 111 -> byte 0b00111001 = 57
    assert pack_bits(np.array([1, 7]), 3).tolist() == [57]
    for bits in range(1, 9):
        top = np.full(13, 2**bits - 1, dtype=np.uint8)
        assert np.array_equal(unpack_bits(pack_bits(top, bits), bits, 13), top)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"1\.\.8"):
        pack_bits(np.zeros(3, dtype=np.uint8), 9)
    with pytest.raises(ConfigError, match=r"\[0, 3\]"):
        pack_bits(np.array([4]), 2)
    with pytest.raises(ConfigError, match="need"):
        unpack_bits(np.zeros(1, dtype=np.uint8), 4, 3)
