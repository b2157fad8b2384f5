"""Segmentation mask folders (data/masks.py): images and palette / grey PNG masks the test writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from netsculpt.data.masks import MaskSegmentation
from netsculpt.errors import DataError
from tests.data._dense_files import save_palette_mask

MASK = np.array([[0, 0, 1, 1], [0, 255, 1, 1], [2, 2, 255, 0], [2, 2, 0, 0]], np.uint8)


def _pair(root: Path, split: str, stem: str, mask: np.ndarray, *, grey: bool = False) -> None:
    for folder in ("images", "masks"):
        (root / folder / split).mkdir(parents=True, exist_ok=True)
    h, w = mask.shape
    Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(root / "images" / split / f"{stem}.jpg")
    if grey:
        Image.fromarray(mask, mode="L").save(root / "masks" / split / f"{stem}.png")
    else:
        save_palette_mask(mask, root / "masks" / split / f"{stem}.png")


def test_palette_and_grey_masks_read_back_as_class_ids_with_255_kept_for_ignore(tmp_path) -> None:
    big = np.kron(MASK, np.ones((4, 4), np.uint8))  # 16x16
    _pair(tmp_path, "train", "a", big)
    _pair(tmp_path, "train", "b", big.T.copy(), grey=True)
    data = MaskSegmentation(tmp_path, "train")
    assert len(data) == 2 and data.num_classes == 3  # ids 0..2 (255 is not a class)
    image, mask = data[0]
    assert image.shape == (3, 16, 16) and mask.dtype == torch.int64
    assert torch.equal(mask, torch.from_numpy(big.astype(np.int64)))
    assert torch.equal(data[1][1], torch.from_numpy(big.T.astype(np.int64)))
    assert MaskSegmentation(tmp_path, "train", channels=1)[0][0].shape == (1, 16, 16)


def test_size_resizes_masks_by_nearest_neighbour_so_no_id_is_blended(tmp_path) -> None:
    _pair(tmp_path, "train", "a", np.kron(MASK, np.ones((8, 8), np.uint8)))  # 32x32
    image, mask = MaskSegmentation(tmp_path, "train", size=8)[0]
    assert image.shape == (3, 8, 8) and torch.equal(
        mask, torch.from_numpy(np.kron(MASK, np.ones((2, 2)))).long()
    )
    _, tall = MaskSegmentation(tmp_path, "train", size=(16, 8))[0]
    assert tall.shape == (16, 8) and set(tall.unique().tolist()) == {0, 1, 2, 255}


def test_the_voc_layout_is_read_through_its_split_list(tmp_path) -> None:
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (tmp_path / folder).mkdir(parents=True)
    for stem in ("2007_000032", "2007_000033"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "JPEGImages" / f"{stem}.jpg")
        save_palette_mask(MASK, tmp_path / "SegmentationClass" / f"{stem}.png")
    (tmp_path / "ImageSets/Segmentation/train.txt").write_text("2007_000033\n")
    data = MaskSegmentation(tmp_path, "train", num_classes=21)
    assert len(data) == 1 and data.pairs[0][0].name == "2007_000033.jpg" and data.num_classes == 21
    assert torch.equal(data[0][1], torch.from_numpy(MASK.astype(np.int64)))
    with pytest.raises(DataError, match=r"needs .*ImageSets/Segmentation/val\.txt"):
        MaskSegmentation(tmp_path, "val", num_classes=21)


def test_a_mask_of_another_size_than_its_image_is_named_with_the_fix(tmp_path) -> None:
    _pair(tmp_path, "train", "a", MASK)
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / "images/train/a.jpg")
    with pytest.raises(
        DataError, match=r"masks/train/a\.png: 4x4 pixels but its image a\.jpg is 5x6.*image's size"
    ):
        MaskSegmentation(tmp_path, "train")


def test_a_missing_split_folder_or_mask_is_named_with_the_fix(tmp_path) -> None:
    _pair(tmp_path, "train", "a", MASK)
    with pytest.raises(DataError, match=r"the 'val' split folder '.*images/val' does not exist.*create it"):
        MaskSegmentation(tmp_path, "val")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "images/train/b.png")
    with pytest.raises(DataError, match=r"b\.png: no mask '.*masks/train/b\.png'"):
        MaskSegmentation(tmp_path, "train")
    with pytest.raises(DataError, match=r"neither mask-folder layout"):
        MaskSegmentation(tmp_path / "images", "train")
    with pytest.raises(DataError, match=r"does not exist; fix the root option"):
        MaskSegmentation(tmp_path / "nope", "train")


def test_a_colour_mask_or_an_id_past_num_classes_is_refused_naming_the_file(tmp_path) -> None:
    _pair(tmp_path, "train", "a", MASK)
    with pytest.raises(DataError, match=r"a\.png: class id 2 but num_classes is 2 .*set num_classes"):
        MaskSegmentation(tmp_path, "train", num_classes=2)[0]
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "masks/train/a.png")
    with pytest.raises(DataError, match=r"a\.png: a colour \(RGB\) mask; netsculpt reads index masks"):
        MaskSegmentation(tmp_path, "train")
    save_palette_mask(np.zeros((4, 4), np.uint8), tmp_path / "masks/train/a.png")
    with pytest.raises(DataError, match=r"hold at most one class id \(0\); set num_classes"):
        MaskSegmentation(tmp_path, "train")


def test_a_cityscapes_or_ade20k_folder_is_pointed_to_its_own_reader(tmp_path) -> None:
    """Their raw ids are not training ids (Cityscapes' 7 is road = 0; ADE20K's 0 is ignored)."""
    from tests.data._benchmark_files import write_ade20k, write_cityscapes

    with pytest.raises(DataError, match=r"this is the cityscapes layout.*read it as data 'cityscapes'"):
        MaskSegmentation(write_cityscapes(tmp_path / "city"), "train")
    with pytest.raises(DataError, match=r"this is the ade20k layout.*\(CLI --data ade20k\)"):
        MaskSegmentation(write_ade20k(tmp_path / "ade"), "training")
