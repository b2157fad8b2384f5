"""The training-data fingerprint sees per-item transforms that are not dataclasses: before, it hashed
``b"?"`` for all of them, so a resume on the same images under ``Resize(32)`` instead of ``Resize(28)``
(or another lambda, another ``Normalize``) was silently accepted."""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader, Dataset

from netsculpt.errors import ConfigError
from netsculpt.train import TrainConfig, train
from netsculpt.train.data_id import data_fingerprint

N, BATCH = 24, 8


class Pixels(Dataset):
    """A user's dataset: raw ``images`` / ``labels`` tensors and a torchvision-style ``transform``."""

    def __init__(self, transform: Any) -> None:
        gen = torch.Generator().manual_seed(0)
        self.images = torch.rand(N, 1, 10, 10, generator=gen)
        self.labels = torch.arange(N) % 3
        self.transform = transform

    def __len__(self) -> int:
        return N

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def _fp(transform: Any) -> dict[str, Any] | None:
    return data_fingerprint(DataLoader(Pixels(transform), batch_size=BATCH))


def _add(x: torch.Tensor, amount: float = 1.0) -> torch.Tensor:
    return x + amount


class _Opaque:
    """A user's callable class: its settings live in arbitrary attributes netsculpt does not walk."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (T.Resize(8, antialias=True), T.Resize(6, antialias=True)),
        (T.Normalize((0.1,), (0.3,)), T.Normalize((0.5,), (0.3,))),
        (
            T.Compose([T.Resize(8), T.Lambda(lambda x: x * 2)]),
            T.Compose([T.Resize(8), T.Lambda(lambda x: x * 3)]),
        ),
        (lambda x: x + 1, lambda x: x - 1),
        (functools.partial(_add, amount=1.0), functools.partial(_add, amount=2.0)),
    ],
    ids=["resize", "normalize", "compose-lambda", "lambda", "partial"],
)
def test_datasets_differing_only_in_their_transform_get_different_fingerprints(one: Any, other: Any) -> None:
    first, second = _fp(one), _fp(other)
    assert first is not None and second is not None
    assert first["samples"] == second["samples"] == N
    assert first != second
    assert _fp(one) == first  # the same transform describes the same


def test_closure_values_count() -> None:
    """A lambda reading a variable of its enclosing function: same code, other value, other data."""

    def scaled(k: float):
        return lambda x: x * k

    assert _fp(scaled(2.0)) != _fp(scaled(3.0))
    assert _fp(scaled(2.0)) == _fp(scaled(2.0))


def test_a_transform_it_cannot_see_into_is_recorded_as_partial() -> None:
    """Honest fallback: a user's callable class is marked, not guessed; the images are still checked."""
    fp = _fp(T.Compose([T.Resize(8), _Opaque()]))
    assert fp is not None and fp["transforms"].startswith("partial:")
    assert fp != _fp(T.Compose([T.Resize(6), _Opaque()]))  # the parts it sees still count


@dataclass(frozen=True)
class _WithFunction:
    """A dataclass transform holding a function: its repr printed ``<function ... at 0x...>``, which
    changed in every process, so every resume of such a run was refused."""

    fn: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def test_a_dataclass_holding_a_function_is_described_without_its_address() -> None:
    fp = _fp(_WithFunction(_add))
    assert fp is not None and "transforms" in fp and not fp["transforms"].startswith("partial:")
    assert fp != _fp(_WithFunction(functools.partial(_add, amount=2.0)))


class Wrapped(Dataset):
    """A user's wrapper that transforms the items of the dataset it holds as ``.dataset``."""

    def __init__(self, dataset: Dataset, transform: Any) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.dataset[index]
        return self.transform(image), label


def test_a_wrapper_s_transform_and_a_target_transform_count() -> None:
    def fp(dataset: Dataset) -> dict[str, Any] | None:
        return data_fingerprint(DataLoader(dataset, batch_size=BATCH))

    base = Pixels(None)
    assert fp(Wrapped(base, T.Resize(8))) != fp(Wrapped(base, T.Resize(6)))
    assert fp(Wrapped(base, T.Resize(8))) == fp(Wrapped(Pixels(None), T.Resize(8)))
    assert "transforms" not in fp(base)  # no transform anywhere: the fingerprint of before
    other = Pixels(None)
    other.target_transform = functools.partial(_add, amount=1.0)
    assert fp(other) != fp(base)


_PROBE = """
import torchvision.transforms as T
from torch.utils.data import DataLoader
from tests.train.test_transform_id import Pixels, _add
import functools
from netsculpt.train.data_id import data_fingerprint
from tests.train.test_transform_id import _WithFunction
t = T.Compose([T.Resize(8), T.Normalize((0.1,), (0.3,)), T.Lambda(functools.partial(_add, amount=2.0)),
               _WithFunction(_add)])
print(data_fingerprint(DataLoader(Pixels(t), batch_size=8))["transforms"])
"""


def test_the_fingerprint_is_the_same_in_another_process() -> None:
    """A resume runs in a new process: the description must not depend on addresses or hash seeds."""
    root = Path(__file__).resolve().parents[2]
    probes = []
    for seed in ("1", "2"):  # both at once: each spends seconds importing torch, on a core of its own
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
        probes.append(
            subprocess.Popen(
                [sys.executable, "-c", _PROBE],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    seen = set()
    for probe in probes:
        out, err = probe.communicate(timeout=300)
        assert probe.returncode == 0, err
        seen.add(out.strip())
    assert len(seen) == 1 and not seen.pop().startswith("partial:")


def _run(out_dir: Path, transform: Any, epochs: int, resume: bool = False) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    loader = DataLoader(Pixels(transform), batch_size=BATCH)
    config = TrainConfig(epochs=epochs, lr=0.01, warmup_epochs=0, batch_size=BATCH)
    train(model, loader, loader, config, out_dir=out_dir, resume=resume)


def test_resuming_under_another_torchvision_transform_is_refused(tmp_path: Path) -> None:
    _run(tmp_path, T.Resize(8, antialias=True), epochs=1)
    with pytest.raises(
        ConfigError, match=r"per-item transforms [0-9a-f]{12} -> [0-9a-f]{12}.*same transform"
    ):
        _run(tmp_path, T.Resize(6, antialias=True), epochs=2, resume=True)
    _run(tmp_path, T.Resize(8, antialias=True), epochs=2, resume=True)  # the same one still resumes


def _legacy_sha(dataset: Any) -> str:
    """The fingerprint's sha256 exactly as netsculpt computed it before transforms were described."""
    digest = hashlib.sha256()
    transform = dataset.transform
    digest.update(
        repr(transform).encode() if transform is None or hasattr(transform, "__dataclass_fields__") else b"?"
    )
    for tensor in (dataset.labels, dataset.images):
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("max_bytes", [None, 0], ids=["prepared-up-front", "prepared-per-item"])
def test_built_in_fingerprints_are_unchanged_so_their_checkpoints_resume(max_bytes: int | None) -> None:
    """Built-in splits hold no transform, or (too big to prepare up front) the ImageTransform dataclass:
    both must hash as before, or every existing checkpoint would be refused."""
    from netsculpt.data.base import DatasetInfo
    from netsculpt.data.prepare import prepare_split

    info = DatasetInfo("toy", 3, 1, (10, 10), (0.5,), (0.25,))
    raw = (torch.rand(N, 1, 10, 10, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    kw = {} if max_bytes is None else {"max_bytes": max_bytes}
    dataset = prepare_split(raw, torch.arange(N) % 3, info, resize=12, **kw)
    assert (dataset.transform is None) == (max_bytes is None)
    fp = data_fingerprint(DataLoader(dataset, batch_size=BATCH))
    assert fp == {"samples": N, "sha256": _legacy_sha(dataset)}


def test_a_checkpoint_written_before_transforms_were_recorded_still_resumes(tmp_path: Path) -> None:
    """Its fingerprint has no "transforms" entry (it hashed b"?"): images and labels are compared alone."""
    _run(tmp_path, T.Resize(8, antialias=True), epochs=1)
    (path,) = tmp_path.rglob("checkpoint.pt")
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["data"]["sha256"] == _legacy_sha(Pixels(T.Resize(8)))
    assert "transforms" in ckpt["data"]  # recorded now; an older netsculpt wrote none
    ckpt["data"].pop("transforms")
    torch.save(ckpt, path)
    _run(tmp_path, T.Resize(8, antialias=True), epochs=2, resume=True)
