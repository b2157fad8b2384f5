"""benchmarks/detection.py's fine-tune loop trains a distillation loss's hint adapters with the student
(they were left at their random init, so the hint term chased a fixed random projection), checkpoints
them and resumes them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


class _Net(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        self.out = nn.Conv2d(width, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import _dense_longer
    import _dense_models

    return _dense_models, _dense_longer


def _setup(bench):
    _, longer = bench
    torch.manual_seed(0)
    images, masks = torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8, 8, 8))
    loader = [(images[:4], masks[:4]), (images[4:], masks[4:])]
    setup = type("S", (), {"task": "segmentation", "example": (images[:1],)})()
    teacher, student = _Net(8).eval(), _Net(4)  # 4 -> 8 channels: a learned 1x1 adapter
    return loader, longer.kd_step(setup, teacher, hints=["features"])(student), student


def test_fit_trains_and_checkpoints_hint_adapters(bench, tmp_path):
    models, _ = bench
    loader, step, student = _setup(bench)
    adapter = [p.detach().clone() for p in step.learnable.parameters()]
    assert adapter, "a 4 -> 8 channel hint needs a learned adapter"
    ckpt = tmp_path / "ft.ckpt"
    models.fit(student, loader, step, epochs=1, lr=1e-2, ckpt=ckpt, label="t")
    after = list(step.learnable.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(adapter, after)), "adapters were not trained"
    saved = torch.load(ckpt, weights_only=True)["learnable"]
    assert all(torch.equal(saved[k], v) for k, v in step.learnable.state_dict().items())


def test_fit_resumes_hint_adapters(bench, tmp_path):
    models, _ = bench
    loader, step, student = _setup(bench)
    ckpt = tmp_path / "ft.ckpt"
    models.fit(student, loader, step, epochs=1, lr=1e-2, ckpt=ckpt, label="t")
    trained = {k: v.clone() for k, v in step.learnable.state_dict().items()}
    _, fresh, fresh_student = _setup(bench)  # a restarted process: new student, new random adapters
    models.fit(fresh_student, loader, fresh, epochs=1, lr=1e-2, ckpt=ckpt, label="t")  # already done
    assert all(torch.equal(trained[k], v) for k, v in fresh.learnable.state_dict().items())
