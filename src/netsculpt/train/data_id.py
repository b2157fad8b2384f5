"""A fingerprint of the training data, stored in checkpoints so a resume on other data is refused.

The batch count per epoch was the only data check, so resuming with another dataset of the same size
(``--data digits --resize 28`` for ``mnist5k``, another ``--limit`` that rounds to the same batches)
silently continued the old weights on new images: a model that matches neither run.
"""

from __future__ import annotations

import hashlib
from dataclasses import is_dataclass
from typing import Any

import torch
from torch.utils.data import Subset

_MAX_WRAPPERS = 8  # augmentation / subset wrappers to look through before giving up


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


def data_fingerprint(loader: Any) -> dict[str, Any] | None:
    """``{"samples", "sha256"}`` over the raw images and labels the loader's dataset serves, in order.

    Looks through ``Subset`` (hold-out splits) and wrappers that keep the wrapped set as ``.dataset``
    (``RandomShift``) down to a set holding ``images`` and ``labels`` tensors. Reads no sample through
    ``__getitem__``, so no augmentation generator moves. ``None`` for data it cannot see into (a user's
    own Dataset): such runs are checked by batch count only, as before.
    """
    dataset = getattr(loader, "dataset", None)
    indices: torch.Tensor | None = None
    for _ in range(_MAX_WRAPPERS):
        if isinstance(dataset, Subset):
            own = torch.as_tensor(list(dataset.indices), dtype=torch.long)
            indices = own if indices is None else own[indices]
            dataset = dataset.dataset
        elif isinstance(getattr(dataset, "images", None), torch.Tensor) and isinstance(
            getattr(dataset, "labels", None), torch.Tensor
        ):
            break
        elif getattr(dataset, "dataset", None) is not None:
            dataset = dataset.dataset
        else:
            return None
    else:
        return None
    images, labels = dataset.images, dataset.labels
    if indices is not None:
        images, labels = images[indices], labels[indices]
    digest = hashlib.sha256()
    transform = getattr(dataset, "transform", None)  # resize / channel conversion applied per item
    digest.update(repr(transform).encode() if transform is None or is_dataclass(transform) else b"?")
    for tensor in (labels, images):
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(_tensor_bytes(tensor))
    return {"samples": int(labels.shape[0]), "sha256": digest.hexdigest()}
