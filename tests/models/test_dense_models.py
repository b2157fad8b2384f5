"""The zoo's detector and segmenter for the digits canvases build by name and keep torchvision's API."""

from __future__ import annotations

import torch

from netsculpt.models import create_model, model_input_shape


def test_fcos_slim_detects_and_returns_losses_in_training_mode() -> None:
    torch.manual_seed(0)
    model = create_model("fcos_slim", image_size=64).eval()
    assert model_input_shape("fcos_slim") == (1, 1, 128, 128)
    with torch.no_grad():
        (out,) = model([torch.rand(1, 64, 64)])
    assert set(out) == {"boxes", "scores", "labels"}
    model.train()
    target = {"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([3])}
    losses = model([torch.rand(1, 64, 64)], [target])
    assert set(losses) == {"classification", "bbox_regression", "bbox_ctrness"}
    assert not [n for n, m in model.named_modules() if getattr(m, "inplace", False)]
    torch.manual_seed(0)
    again = dict(create_model("fcos_slim", image_size=64).named_parameters())
    assert all(torch.equal(v, again[k]) for k, v in model.named_parameters())  # same seed, same weights


def test_lraspp_gray_returns_a_class_map() -> None:
    model = create_model("lraspp_gray").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 11, 64, 64)
