"""``imagefolder`` from PNG files written in tmp_path."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from netsculpt.data import dataset_info, load_dataset
from netsculpt.errors import DataError

# Solid colours make every expected pixel value computable by hand.
COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0)}


def _write(root, split: str, cls: str, count: int, size=(12, 10)) -> None:
    folder = root / split / cls
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", size, COLOURS[cls]).save(folder / f"{i}.png")


def _tree(root, test_name: str = "test") -> None:
    for cls in ("red", "blue", "green"):
        _write(root, "train", cls, 4)
        _write(root, test_name, cls, 2)


def test_loads_sorted_classes_and_exact_pixels(tmp_path) -> None:
    _tree(tmp_path)
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    train, test = load_dataset("imagefolder", root=tmp_path, mean=mean, std=std)
    assert train.classes == ("blue", "green", "red")  # sorted folder names; label k is the k-th
    assert (len(train), len(test)) == (12, 6)
    assert train.info.image_size == (10, 12)  # PIL sizes are (W, H); info is (H, W) of the first image
    for image, label in train:
        colour = torch.tensor(COLOURS[train.classes[label]], dtype=torch.float32) / 255
        expected = ((colour - 0.5) / 0.5).view(3, 1, 1).expand(3, 10, 12)
        assert torch.allclose(image, expected, atol=1e-6)


def test_val_folder_resize_grey_and_measured_stats(tmp_path) -> None:
    _tree(tmp_path, test_name="val")
    _write(tmp_path, "train", "red", 1, size=(30, 30))  # a differently sized image is resized too
    train, test = load_dataset("imagefolder", root=tmp_path, image_size=8, in_channels=1)
    assert train[0][0].shape == (1, 8, 8) and len(test) == 6
    # mean/std were measured on the training images, so the normalised train split is standardised.
    assert abs(train.images.mean().item()) < 1e-4 and abs(train.images.std(unbiased=False).item() - 1) < 1e-3
    info = dataset_info("imagefolder", root=tmp_path, image_size=8, in_channels=1, resize=16)
    assert info.num_classes == 3 and info.image_size == (16, 16) and info.in_channels == 1


def test_layout_errors_say_what_is_expected(tmp_path) -> None:
    with pytest.raises(DataError, match="needs root="):
        load_dataset("imagefolder")
    _write(tmp_path, "train", "red", 1)
    with pytest.raises(DataError, match=r"must contain train/<class>/ and test/<class>/ \(or val/<class>/\)"):
        load_dataset("imagefolder", root=tmp_path)
    _write(tmp_path, "test", "blue", 1)
    with pytest.raises(DataError, match=r"classes missing from .*: blue"):
        load_dataset("imagefolder", root=tmp_path)
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(DataError, match="has no images"):
        load_dataset("imagefolder", root=tmp_path)


@pytest.mark.parametrize("name", ["broken.png", "0.png"], ids=["later", "first"])
def test_unreadable_image_is_named(tmp_path, name: str) -> None:
    """The first training image is opened on its own to read the size: it escaped as a PIL error."""
    _tree(tmp_path)
    (tmp_path / "train" / sorted(p.name for p in (tmp_path / "train").iterdir())[0] / name).write_bytes(
        b"not a png"
    )
    with pytest.raises(DataError, match=rf"cannot read image .*{name}"):
        load_dataset("imagefolder", root=tmp_path)
