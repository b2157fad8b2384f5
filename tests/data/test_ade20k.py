"""ADE20K SceneParsing (data/ade20k.py) on an ``ADEChallengeData2016`` folder the test writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from netsculpt.data.ade20k import ADE20KSegmentation
from netsculpt.errors import DataError
from tests.data._benchmark_files import ADE_RAW, ADE_TRAIN, write_ade20k


def test_other_is_ignored_and_classes_1_to_150_become_0_to_149(tmp_path) -> None:
    """mmseg's reduce_zero_label: 0 -> 255, k -> k - 1 (so 150 -> 149), 255 stays ignored."""
    write_ade20k(tmp_path, scale=1)
    data = ADE20KSegmentation(tmp_path, "training")
    assert len(data) == 2 and data.num_classes == 150
    assert [p[0].name for p in data.pairs] == ["ADE_train_00000001.jpg", "ADE_train_00000002.jpg"]
    image, mask = data[0]
    assert image.shape == (3, 3, 4) and torch.equal(mask, torch.from_numpy(ADE_TRAIN))
    ignored = ADE_RAW.copy()
    ignored[0, 0] = 255
    Image.fromarray(ignored, mode="L").save(data.pairs[1][1])
    assert data[1][1][0, 0] == 255
    assert len(ADE20KSegmentation(tmp_path, "val")) == 1  # train / val name the splits too


def test_size_resizes_by_nearest_so_no_class_is_blended(tmp_path) -> None:
    write_ade20k(tmp_path, scale=8)  # 32x24
    image, mask = ADE20KSegmentation(tmp_path, "train", size=(12, 16))[0]
    assert image.shape == (3, 12, 16) and torch.equal(
        mask, torch.from_numpy(np.kron(ADE_TRAIN, np.ones((4, 4)))).long()
    )


def test_malformed_folders_and_annotations_are_named_with_the_fix(tmp_path) -> None:
    write_ade20k(tmp_path / "ADEChallengeData2016", scale=1)
    with pytest.raises(
        DataError, match=r"not an ADEChallengeData2016 folder .*point root at .*ADEChallengeData2016'"
    ):
        ADE20KSegmentation(tmp_path)
    root = tmp_path / "ADEChallengeData2016"
    with pytest.raises(DataError, match=r"ADE20K has splits training, validation, not 'test'"):
        ADE20KSegmentation(root, "test")
    (root / "annotations/training/ADE_train_00000002.png").unlink()
    with pytest.raises(DataError, match=r"ADE_train_00000002\.jpg: no annotation .*add it or drop it"):
        ADE20KSegmentation(root)
    Image.fromarray(np.full((3, 4), 151, np.uint8), mode="L").save(
        root / "annotations/training/ADE_train_00000002.png"
    )
    with pytest.raises(DataError, match=r"ADE_train_00000002\.png: pixel values \[151\] are not ADE20K"):
        ADE20KSegmentation(root)[1]
    Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(root / "annotations/training/ADE_train_00000002.png")
    with pytest.raises(DataError, match=r"a colour \(RGB\) mask"):  # the full release's *_seg.png
        ADE20KSegmentation(root)[1]
