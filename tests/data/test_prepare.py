"""resize / channels options, their effect on DatasetInfo, and the per-item fallback for huge splits."""

from __future__ import annotations

import pytest
import torch

from netsculpt.data import dataset_info, load_dataset
from netsculpt.data.base import DatasetInfo
from netsculpt.data.prepare import LUMA, prepare_split, transformed_info
from netsculpt.errors import DataError


def test_resize_digits_to_cifar_shape_and_repeat_channels() -> None:
    train, test = load_dataset("mnist5k", resize=32, channels=3, limit=50)
    image, _ = train[0]
    assert image.shape == (3, 32, 32) and test[0][0].shape == (3, 32, 32)
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])  # grey repeated
    info = dataset_info("mnist5k", resize=32, channels=3)
    assert info == train.info
    assert info.image_size == (32, 32) and info.mean == (0.1307,) * 3 and info.std == (0.3081,) * 3


def test_resize_keeps_content() -> None:
    small, _ = load_dataset("mnist5k", limit=20)
    big, _ = load_dataset("mnist5k", limit=20, resize=(56, 56))
    # Bilinear upsampling preserves average brightness (ink is redistributed, not created) ...
    assert big.images.mean().item() == pytest.approx(small.images.mean().item(), abs=0.01)
    # ... and 2x2 average pooling brings back (nearly) the original digits; stroke edges blur slightly.
    back = torch.nn.functional.avg_pool2d(big.images, 2)
    assert torch.corrcoef(torch.stack([back.flatten(), small.images.flatten()]))[0, 1] > 0.98


def test_bilinear_resize_is_exact_on_a_ramp() -> None:
    info = DatasetInfo("ramp", 1, 1, (4, 8), (0.0,), (1.0,))
    ramp = torch.linspace(0, 1, 8).expand(1, 1, 4, 8).contiguous()
    data = prepare_split(ramp, torch.tensor([0]), info, resize=(4, 16))
    row = data[0][0][0, 0]
    # Away from the borders, bilinear interpolation of a linear function is linear: constant steps.
    steps = row[2:-2].diff()
    assert torch.allclose(steps, steps.mean().expand_as(steps), atol=1e-6) and steps.mean() > 0


def test_rgb_to_grey_uses_luma_weights() -> None:
    info = DatasetInfo("rgb", 2, 3, (2, 2), (0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    images = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    images[0, 0] = 255  # pure red
    data = prepare_split(images, torch.tensor([1]), info, channels=1)
    grey = transformed_info(info, channels=1)
    assert grey.mean[0] == pytest.approx(sum(w * m for w, m in zip(LUMA, info.mean)))
    expected = (LUMA[0] - grey.mean[0]) / grey.std[0]
    assert data[0][0].shape == (1, 2, 2) and torch.allclose(data[0][0], torch.full((1, 2, 2), expected))


def test_bad_resize_and_channels_are_rejected() -> None:
    for bad in (0, (32,), (32, -1), 2.5, True):
        with pytest.raises(DataError, match="resize must be"):
            dataset_info("mnist5k", resize=bad)
    with pytest.raises(DataError, match="channels=2 is not a conversion"):
        dataset_info("cifar10", channels=2)
    with pytest.raises(DataError, match="channels must be a positive int"):
        dataset_info("mnist5k", channels=0)


def test_over_budget_split_is_prepared_per_item_with_equal_values() -> None:
    raw, _ = load_dataset("synthetic", train_size=20, test_size=5)  # just to get realistic info
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(20) % 10
    eager = prepare_split(images, labels, raw.info, resize=40, channels=1)
    lazy = prepare_split(images, labels, raw.info, resize=40, channels=1, max_bytes=0)
    assert eager.transform is None and lazy.transform is not None
    assert lazy.images.dtype == torch.uint8  # compact raw pixels kept
    for i in (0, 7, 19):
        assert torch.allclose(eager[i][0], lazy[i][0], atol=1e-6) and eager[i][1] == lazy[i][1]
    assert torch.allclose(lazy.tensors()[0], eager.images, atol=1e-6)
