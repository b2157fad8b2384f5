"""Cityscapes fine annotations (data/cityscapes.py) on folders laid out as the official archives unzip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from netsculpt.data.cityscapes import LABEL_ID_TABLE, CityscapesSegmentation
from netsculpt.errors import DataError
from tests.data._benchmark_files import FRAMES, LABEL_IDS, TRAIN_IDS, write_cityscapes


def test_label_ids_become_the_19_training_ids_and_the_rest_255(tmp_path) -> None:
    write_cityscapes(tmp_path, scale=1)
    train = CityscapesSegmentation(tmp_path, "train")
    assert len(train) == 2 and train.num_classes == 19
    assert [p[0].name for p in train.pairs] == [f"{f}_leftImg8bit.png" for f in FRAMES["train"]]
    assert all(p[1].name.endswith("_gtFine_labelIds.png") for p in train.pairs)  # not colour / instance
    image, mask = train[0]
    assert image.shape == (3, 4, 8) and mask.dtype == torch.int64
    assert torch.equal(mask, torch.from_numpy(TRAIN_IDS.astype(np.int64)))
    assert len(CityscapesSegmentation(tmp_path, "val")) == 1


def test_the_id_table_is_the_official_one_torchvision_also_carries() -> None:
    """torchvision.datasets.Cityscapes.classes copies cityscapesScripts' labels.py: id -> train_id."""
    from torchvision.datasets import Cityscapes

    official = {c.id: c.train_id for c in Cityscapes.classes if c.id >= 0}  # license plate's -1 is no pixel
    assert sorted(official) == list(range(34))
    assert {i: int(LABEL_ID_TABLE[i]) for i in range(34)} == official
    assert sorted(v for v in official.values() if v != 255) == list(range(19))


def test_label_train_ids_are_read_as_they_are_when_present(tmp_path) -> None:
    write_cityscapes(tmp_path, scale=1)
    folder = tmp_path / "gtFine/train/aachen"
    wrong = np.where(TRAIN_IDS == 0, 1, TRAIN_IDS).astype(np.uint8)  # differs from the labelIds' mapping
    Image.fromarray(wrong, mode="L").save(folder / "aachen_000000_000019_gtFine_labelTrainIds.png")
    data = CityscapesSegmentation(tmp_path, "train")
    assert data.pairs[0][1].name.endswith("_labelTrainIds.png")
    assert data.pairs[1][1].name.endswith("_labelIds.png")  # bochum has no labelTrainIds
    assert torch.equal(data[0][1], torch.from_numpy(wrong.astype(np.int64)))
    Image.fromarray(np.full((4, 8), 19, np.uint8), mode="L").save(
        folder / "aachen_000000_000019_gtFine_labelTrainIds.png"
    )
    with pytest.raises(
        DataError, match=r"labelTrainIds\.png: pixel values \[19\] are not Cityscapes training"
    ):
        data[0]


def test_size_downscales_images_bilinearly_and_masks_by_nearest(tmp_path) -> None:
    write_cityscapes(tmp_path, scale=4)  # 32x16, as 2048x1024 is 2:1
    image, mask = CityscapesSegmentation(tmp_path, "train", size=(8, 16))[0]
    assert image.shape == (3, 8, 16) and mask.shape == (8, 16)
    assert torch.equal(mask, torch.from_numpy(np.kron(TRAIN_IDS, np.ones((2, 2)))).long())
    assert CityscapesSegmentation(tmp_path, "train", size=8, channels=1)[0][0].shape == (1, 8, 8)


def test_malformed_folders_and_masks_are_named_with_the_fix(tmp_path) -> None:
    with pytest.raises(DataError, match=r"does not exist; fix the root option"):
        CityscapesSegmentation(tmp_path / "nope")
    (tmp_path / "leftImg8bit").mkdir()
    with pytest.raises(DataError, match=r"no gtFine/ folder.*unzip gtFine_trainvaltest\.zip"):
        CityscapesSegmentation(tmp_path)
    write_cityscapes(tmp_path, scale=1)
    with pytest.raises(DataError, match=r"Cityscapes has splits train, val, test, not 'training'"):
        CityscapesSegmentation(tmp_path, "training")
    labels = tmp_path / "gtFine/train/bochum"
    (labels / "bochum_000000_000313_gtFine_labelIds.png").unlink()
    with pytest.raises(
        DataError, match=r"bochum_000000_000313_leftImg8bit\.png: no label mask .*labelIds\.png"
    ):
        CityscapesSegmentation(tmp_path, "train")
    Image.fromarray(LABEL_IDS[:, :4], mode="L").save(labels / "bochum_000000_000313_gtFine_labelIds.png")
    with pytest.raises(DataError, match=r"labelIds\.png: 4x4 pixels but its image .* is 8x4"):
        CityscapesSegmentation(tmp_path, "train")
    colour = np.zeros((4, 8, 3), np.uint8)
    Image.fromarray(colour).save(labels / "bochum_000000_000313_gtFine_labelIds.png")  # the _color.png
    with pytest.raises(DataError, match=r"labelIds\.png: a colour \(RGB\) mask"):
        CityscapesSegmentation(tmp_path, "train")[1]
    Image.fromarray(np.full((4, 8), 40, np.uint8), mode="L").save(
        labels / "bochum_000000_000313_gtFine_labelIds.png"
    )
    with pytest.raises(DataError, match=r"pixel values \[40\] are not Cityscapes label ids \(0\.\.33\)"):
        CityscapesSegmentation(tmp_path, "train")[1]
