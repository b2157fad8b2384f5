"""digits_detect / digits_seg canvases from the bundled MNIST digits (data/canvases.py)."""

from __future__ import annotations

import pytest
import torch

from netsculpt.data.canvases import CanvasSpec, DigitsCanvases, _iou, detection_collate
from netsculpt.errors import DataError


def test_canvases_are_seeded_and_follow_the_spec() -> None:
    data = DigitsCanvases("train", 20, seed=3)
    again = DigitsCanvases("train", 20, seed=3)
    for i in range(len(data)):
        image, target = data[i]
        assert torch.equal(image, again[i][0]) and torch.equal(target["boxes"], again[i][1]["boxes"])
        assert image.shape == (1, 128, 128) and image.min() >= 0 and image.max() <= 1
        k = len(target["labels"])
        assert 1 <= k <= 6 and target["masks"].shape == (k, 128, 128)
        assert ((target["labels"] >= 1) & (target["labels"] <= 10)).all()
        boxes = target["boxes"].numpy()
        sides = boxes[:, 2:] - boxes[:, :2]
        assert (sides >= 1).all() and (sides <= 56).all()
        for j in range(k):  # boxes hug each digit's ink, which lies inside its box
            mask = target["masks"][j].bool()
            rows, cols = torch.nonzero(mask, as_tuple=True)
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == tuple(boxes[j].astype(int))
            assert (_iou(boxes[j], boxes[:j]) <= 0.1).all()
    assert not torch.equal(data[0][0], DigitsCanvases("train", 1, seed=4)[0][0])


def test_train_and_test_canvases_use_their_own_digits() -> None:
    train, test = DigitsCanvases("train", 1), DigitsCanvases("test", 1)
    assert len(train.digits) == 4000 and len(test.digits) == 1000
    seen = {bytes(d.numpy()) for d in train.digits}
    assert not any(bytes(d.numpy()) in seen for d in test.digits[:200])


def test_segmentation_maps_and_collation() -> None:
    seg = DigitsCanvases("test", 4, task="seg")
    image, classes = seg[0]
    assert torch.equal(image, DigitsCanvases("test", 4)[0][0])  # the same canvas as the detection set
    assert classes.shape == (128, 128) and classes.dtype == torch.int64
    assert ((classes > 0) == (image[0] > 0.25)).float().mean() > 0.99  # labelled pixels are the ink
    assert set(classes.unique().tolist()) <= set(range(11)) and (classes > 0).any()
    images, targets = detection_collate([DigitsCanvases("test", 2)[i] for i in range(2)])
    assert len(images) == len(targets) == 2 and "boxes" in targets[0]


def test_bad_requests_are_explained() -> None:
    with pytest.raises(DataError, match="split must be"):
        DigitsCanvases("val", 3)
    with pytest.raises(DataError, match="task must be"):
        DigitsCanvases("train", 3, task="pose")
    with pytest.raises(DataError, match="canvas spec"):
        DigitsCanvases("train", 3, spec=CanvasSpec(size=32, scale=(14, 56)))


def test_named_sets_default_to_one_canvas_per_digit() -> None:
    from netsculpt.data import digits_detect, digits_seg

    assert len(digits_detect("train")) == 4000 and len(digits_seg("test")) == 1000
    assert digits_seg("test", 3).task == "seg" and digits_detect("test", 3).task == "detect"
