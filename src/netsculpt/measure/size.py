"""Size of a model on disk, as the bytes of its safetensors file.

safetensors is the format netsculpt saves models in, and its size is the payload plus a small JSON
header, so the figure is what a user would actually ship, without pickle overhead or code.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from safetensors.torch import save
from torch import nn

from netsculpt.measure._inputs import check_module


def _tensors(name: str, value: object) -> Iterator[tuple[str, torch.Tensor]]:
    """Flatten one state-dict entry into plain tensors safetensors can store.

    Quantized tensors become their integer values plus scales and zero points (what a packed format
    stores); tuples such as ``_packed_params`` are unpacked; non-tensor entries (dtypes) are skipped.
    """
    if isinstance(value, tuple | list):
        for i, item in enumerate(value):
            yield from _tensors(f"{name}.{i}", item)
    elif isinstance(value, torch.Tensor) and value.is_quantized:
        yield name, value.int_repr()
        if value.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            yield f"{name}.scale", torch.tensor([value.q_scale()], dtype=torch.float32)
            yield f"{name}.zero_point", torch.tensor([value.q_zero_point()], dtype=torch.int32)
        else:
            yield f"{name}.scale", value.q_per_channel_scales().float()
            yield f"{name}.zero_point", value.q_per_channel_zero_points().int()
    elif isinstance(value, torch.Tensor):
        yield name, value.detach()


def serialized_size_bytes(model: nn.Module) -> int:
    """Bytes of ``safetensors.torch.save`` of the state dict; tied weights are stored once."""
    check_module(model, "size")
    state: dict[str, torch.Tensor] = {}
    views: set[tuple[int, int, tuple[int, ...], tuple[int, ...], torch.dtype]] = set()
    storages: set[int] = set()
    for key, value in model.state_dict().items():
        for name, tensor in _tensors(key, value):
            ptr = tensor.untyped_storage().data_ptr()
            view = (ptr, tensor.storage_offset(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
            if view in views:
                continue  # a tied weight: safetensors.torch.save_model also keeps one name
            views.add(view)
            # safetensors refuses tensors that share memory; a distinct view of a shared buffer is copied.
            state[name] = tensor.clone() if ptr in storages and tensor.numel() else tensor.contiguous()
            storages.add(ptr)
    return len(save(state))
