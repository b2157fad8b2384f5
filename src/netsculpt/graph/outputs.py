"""Pin what the traced forward returned: every tensor in it is part of the model's interface.

A Hugging Face decoder called with ``use_cache`` (its default) also returns its KV cache: every layer's
keys and values, which a generation loop passes back in. Those are outputs too, but "it is a network
output" would puzzle anyone looking at an attention projection, so they are named as the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from netsculpt.graph.builder import GraphBuilder, Value
from netsculpt.measure._inputs import tensor_leaves

OUTPUT_REASON = "it is a network output (its size is part of the model's contract)"
# transformers 5 names the field ``cache``, 4.x ``past_key_values`` (a cache object or tuples of tensors)
_CACHE_KEYS = ("cache", "past_key_values")


def _kv_cache(output: Any) -> tuple[str, Any] | None:
    """The KV cache a ``ModelOutput`` returns, and its field's name. Read from ``keys()``: in transformers 5
    ``past_key_values`` (attribute, ``in``, ``get``) is a deprecated alias of ``cache``, which warns."""
    if not isinstance(output, Mapping):
        return None
    keys = list(output.keys())
    for key in _CACHE_KEYS:
        if key in keys and not isinstance(output[key], torch.Tensor):
            return key, output[key]
    return None


def pin_outputs(builder: GraphBuilder, by_tensor: dict[int, Value], output: Any) -> None:
    """Mark the returned tensors as outputs and pin their channels (the cache's first, with its reason)."""
    found = _kv_cache(output)
    cached = {id(t) for t in tensor_leaves(found[1])} if found else set()
    reason = (
        f"it is kept in the returned KV cache (`{found[0]}`), which a later call reads back: its width is "
        "part of the model's contract (trace with `use_cache=False` to see what else pins it)"
        if found
        else ""
    )
    for t in tensor_leaves(output):  # outputs of any structure (dataclasses too): every tensor is one
        if id(t) in by_tensor:
            v = by_tensor[id(t)]
            builder.outputs.append(v.id)
            if id(t) in cached:
                builder.block(v.labels, reason)
    for t in tensor_leaves(output):
        if id(t) in by_tensor and id(t) not in cached:
            builder.block(by_tensor[id(t)].labels, OUTPUT_REASON)
