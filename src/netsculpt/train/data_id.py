"""A fingerprint of the training data, stored in checkpoints so a resume on other data is refused.

The batch count per epoch was the only data check, so resuming with another dataset of the same size
(``--data digits --resize 28`` for ``mnist5k``, another ``--limit`` that rounds to the same batches)
silently continued the old weights on new images: a model that matches neither run.

Per-item transforms that are not dataclasses (a lambda, torchvision's ``Resize``) were hashed as ``b"?"``,
so datasets differing only in them collided. They are now described by
:mod:`netsculpt.train.transform_id` into a separate ``"transforms"`` entry, leaving ``"sha256"`` (and so
the fingerprint of the built-in datasets, whose transform is a dataclass) exactly as before.
"""

from __future__ import annotations

import hashlib
from dataclasses import is_dataclass
from typing import Any

import torch
from torch.utils.data import ConcatDataset, Subset

from netsculpt.train.transform_id import UNKNOWN, describe

_TRANSFORMS = ("transform", "target_transform")  # attributes torchvision-style datasets apply per item
_MAX_WRAPPERS = 8  # augmentation / subset wrappers to look through before giving up


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


def data_fingerprint(loader: Any) -> dict[str, Any] | None:
    """``{"samples", "sha256"}`` over the raw images and labels the loader's dataset serves, in order,
    plus ``"transforms"`` when a per-item transform is not a dataclass (see :func:`fingerprints_match`).

    Looks through ``Subset`` (hold-out splits), ``ConcatDataset`` (each part in turn) and wrappers that
    keep the wrapped set as ``.dataset`` (``RandomShift``) down to sets holding ``images`` and ``labels``
    tensors. Reads no sample through ``__getitem__``, so no augmentation generator moves. ``None`` for
    data it cannot see into (a user's own Dataset): such runs are checked by batch count only, as before.
    """
    digest, described = hashlib.sha256(), []
    samples = _feed(digest, described, getattr(loader, "dataset", None), None, _MAX_WRAPPERS)
    if samples is None:
        return None
    out: dict[str, Any] = {"samples": samples, "sha256": digest.hexdigest()}
    if described:
        text = "\n".join(described)
        hexdigest = hashlib.sha256(text.encode()).hexdigest()
        out["transforms"] = f"partial:{hexdigest}" if UNKNOWN in text else hexdigest
    return out


def fingerprints_match(saved: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether two fingerprints agree; a checkpoint written before ``"transforms"`` was recorded agrees on
    images and labels alone (it cannot say which transform it used). ``"partial:..."`` values compare the
    parts that could be described: a user's own callable class is not seen into."""
    if "transforms" not in saved:
        current = {k: v for k, v in current.items() if k != "transforms"}
    return saved == current


def _feed(
    digest: Any, described: list[str], dataset: Any, indices: torch.Tensor | None, budget: int
) -> int | None:
    """Hash the samples ``dataset`` serves (at ``indices``, when a Subset chose them); their count."""
    for _ in range(max(budget, 0)):
        if isinstance(dataset, Subset):
            own = torch.as_tensor(list(dataset.indices), dtype=torch.long)
            indices = own if indices is None else own[indices]
            dataset = dataset.dataset
        elif isinstance(getattr(dataset, "images", None), torch.Tensor) and isinstance(
            getattr(dataset, "labels", None), torch.Tensor
        ):
            break
        elif isinstance(dataset, ConcatDataset):
            return _feed_parts(digest, described, dataset, indices, budget - 1)
        elif getattr(dataset, "dataset", None) is not None:
            _describe_own(dataset, described)  # a user's wrapper may transform items on the way out
            dataset = dataset.dataset
        else:
            return None
    else:
        return None
    images, labels = dataset.images, dataset.labels
    if indices is not None:
        images, labels = images[indices], labels[indices]
    transform = getattr(dataset, "transform", None)  # resize / channel conversion applied per item
    if _legacy_repr(transform):  # the built-in datasets: hashed as ever, so their checkpoints resume
        digest.update(repr(transform).encode())
    else:
        digest.update(b"?")
        described.append(f"transform={describe(transform)}")
    _describe_own(dataset, described, ("target_transform",))
    for tensor in (labels, images):
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(_tensor_bytes(tensor))
    return int(labels.shape[0])


def _feed_parts(
    digest: Any, described: list[str], dataset: ConcatDataset, indices: torch.Tensor | None, budget: int
) -> int | None:
    """A ConcatDataset: which part serves each sample (in order), then each part's samples. It returned
    None until 2026-12-07, so a resume on ``ConcatDataset([train, other_extra])`` was not checked."""
    ends = torch.as_tensor(dataset.cumulative_sizes, dtype=torch.long)
    total = int(ends[-1])
    indices = torch.arange(total) if indices is None else torch.where(indices < 0, indices + total, indices)
    part = torch.bucketize(indices, ends, right=True)  # ends[p - 1] <= index < ends[p]
    digest.update(f"concat{len(dataset.datasets)}".encode())
    digest.update(_tensor_bytes(part))
    starts = torch.cat([ends.new_zeros(1), ends[:-1]])
    count = 0
    for p, sub in enumerate(dataset.datasets):
        samples = _feed(digest, described, sub, indices[part == p] - starts[p], budget)
        if samples is None:
            return None
        count += samples
    return count


def _legacy_repr(transform: Any) -> bool:
    """None or a dataclass whose repr holds no memory address (a field holding a function printed as
    ``<function f at 0x...>``, which changed in every process and so refused every resume)."""
    return transform is None or (is_dataclass(transform) and " at 0x" not in repr(transform))


def _describe_own(dataset: Any, described: list[str], names: tuple[str, ...] = _TRANSFORMS) -> None:
    """Describe the transforms ``dataset`` itself holds (none on netsculpt's own wrappers and sets, so
    their fingerprints stay as they were)."""
    for name in names:
        value = getattr(dataset, name, None)
        if value is not None:
            described.append(f"{type(dataset).__name__}.{name}={describe(value)}")
