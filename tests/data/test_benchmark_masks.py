"""The lookup-table base of the Cityscapes and ADE20K readers (data/benchmark_masks.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from netsculpt.data.benchmark_masks import UNKNOWN, id_table
from netsculpt.data.cityscapes import CityscapesSegmentation
from netsculpt.errors import DataError
from tests.data._benchmark_files import write_cityscapes


def test_a_table_maps_what_it_names_ignores_what_it_lists_and_knows_nothing_else() -> None:
    table = id_table({7: 0, 26: 13}, range(3))
    assert table.shape == (256,) and table[7] == 0 and table[26] == 13
    assert table[:3].tolist() == [255, 255, 255]
    assert (np.delete(table, [0, 1, 2, 7, 26]) == UNKNOWN).all()


def test_a_16_bit_instance_image_given_as_the_label_mask_is_named_not_wrapped(tmp_path) -> None:
    """gtFine's *_instanceIds.png holds 1000 x id + instance (e.g. 26001): no value may wrap into a class."""
    write_cityscapes(tmp_path, scale=1)
    labels = tmp_path / "gtFine/train/aachen"
    shutil.copy(labels / "aachen_000000_000019_gtFine_instanceIds.png",
                labels / "aachen_000000_000019_gtFine_labelIds.png")  # fmt: skip
    with pytest.raises(DataError, match=r"labelIds\.png: pixel values \[1000, 7000, 8000, .*or instance"):
        CityscapesSegmentation(tmp_path, "train")[0]
