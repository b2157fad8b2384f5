"""The structure of a model's example inputs as plain JSON, so a saved prune edit can be replayed.

Surgery re-traces the model, and tracing needs inputs of the same structure as the ones the plan was
made with: a classifier's ``(x,)`` but also a detector's ``([image],)`` or a dict of tensors. The
layout keeps every container, each tensor's shape and dtype, and the other leaves (ints, strings,
None) as they were; replay builds zeros of that layout, except that small integer and bool tensors
(token ids, masks: at most ``MAX_INT_VALUES``) keep their values, because a model's control flow can
depend on them (an encoder-decoder's sequence classifier pools at its ``</s>`` tokens and refuses ids
without one). Nothing in it is code: containers are
``tuple`` / ``list`` / ``dict`` with string keys, dtypes come from a fixed list.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from netsculpt.errors import CheckpointError

MAX_INPUT_ELEMENTS = 1 << 24  # 16.8 M values (64 MiB of float32) per example input: 4K images fit
MAX_DIM = 1 << 20
MAX_DEPTH = 8
MAX_NODES = 256
MAX_LEAF_TENSORS = 16
MAX_STRING = 256
MAX_INT_VALUES = 4096  # token ids of a few sequences; larger integer tensors replay as zeros

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def layout_of(inputs: tuple[Any, ...]) -> list[Any] | None:
    """The JSON layout of ``forward``'s positional arguments, or None when one cannot be written.

    None (a namedtuple, a custom object, a float NaN among the leaves) is not an error at prune time:
    the edit then keeps only the tensor shapes, and loading explains what it could not rebuild.
    """
    try:
        return [_node(x, 0) for x in inputs]
    except _Unrepresentable:
        return None


class _Unrepresentable(Exception):
    pass


def _node(x: Any, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise _Unrepresentable
    if isinstance(x, torch.Tensor):
        if x.dtype not in _NAMES:
            raise _Unrepresentable
        node: dict[str, Any] = {"tensor": list(x.shape), "dtype": _NAMES[x.dtype]}
        if not x.is_floating_point() and x.numel() <= MAX_INT_VALUES:
            node["values"] = [int(v) for v in x.detach().cpu().reshape(-1).tolist()]
        return node
    if type(x) in (tuple, list):
        return {type(x).__name__: [_node(v, depth + 1) for v in x]}
    if type(x) is dict:
        if not all(isinstance(k, str) for k in x):
            raise _Unrepresentable
        return {"dict": {k: _node(v, depth + 1) for k, v in x.items()}}
    if x is None or type(x) in (bool, int, str) or (type(x) is float and math.isfinite(x)):
        return {"value": x}
    raise _Unrepresentable


def build_inputs(layout: list[Any]) -> tuple[Any, ...]:
    """Zeros in the recorded layout; ``check_layout`` must have passed."""
    return tuple(_build(node) for node in layout)


def _build(node: dict[str, Any]) -> Any:
    if "tensor" in node:
        if "values" in node:
            return torch.tensor(node["values"], dtype=DTYPES[node["dtype"]]).reshape(node["tensor"])
        return torch.zeros(node["tensor"], dtype=DTYPES[node["dtype"]])
    if "tuple" in node:
        return tuple(_build(v) for v in node["tuple"])
    if "list" in node:
        return [_build(v) for v in node["list"]]
    if "dict" in node:
        return {k: _build(v) for k, v in node["dict"].items()}
    return node["value"]


def check_layout(layout: Any, where: str, max_elements: int, max_dim: int) -> None:
    """Refuse a layout that is not one ``layout_of`` writes, or that would allocate too much."""
    if not isinstance(layout, list) or not layout:
        raise CheckpointError(f"{where}: must be a non-empty list of argument layouts")
    count = {"nodes": 0, "tensors": 0}
    for i, node in enumerate(layout):
        _check(node, f"{where}[{i}]", 0, count, max_elements, max_dim)


def _check(node: Any, where: str, depth: int, count: dict[str, int], max_elements: int, max_dim: int) -> None:
    count["nodes"] += 1
    if count["nodes"] > MAX_NODES or depth > MAX_DEPTH:
        raise CheckpointError(f"{where}: the input layout is deeper or larger than netsculpt writes")
    if not isinstance(node, dict) or len(node) not in (1, 2, 3):
        raise CheckpointError(f"{where}: expected one of tensor / tuple / list / dict / value")
    if "tensor" in node:
        _check_tensor(node, where, count, max_elements, max_dim)
    elif len(node) != 1:
        raise CheckpointError(f"{where}: only a tensor node has more fields ('dtype', 'values')")
    elif "tuple" in node or "list" in node:
        items = node.get("tuple", node.get("list"))
        if not isinstance(items, list):
            raise CheckpointError(f"{where}: a tuple / list node holds a list")
        for i, item in enumerate(items):
            _check(item, f"{where}[{i}]", depth + 1, count, max_elements, max_dim)
    elif "dict" in node:
        if not isinstance(node["dict"], dict):
            raise CheckpointError(f"{where}: a dict node holds an object")
        for key, item in node["dict"].items():
            _check(item, f"{where}[{key!r}]", depth + 1, count, max_elements, max_dim)
    elif "value" in node:
        value = node["value"]
        if not (value is None or isinstance(value, bool | int | float | str)):
            raise CheckpointError(f"{where}: a value leaf is a number, string, boolean or null")
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise CheckpointError(f"{where}: a string leaf is at most {MAX_STRING} characters")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1 << 62:
            raise CheckpointError(f"{where}: an integer leaf is within ±2**62")
    else:
        raise CheckpointError(f"{where}: unknown node {sorted(node)}; expected tensor/tuple/list/dict/value")


def _check_tensor(
    node: dict[str, Any], where: str, count: dict[str, int], max_elements: int, max_dim: int
) -> None:
    shape, dtype = node.get("tensor"), node.get("dtype")
    if dtype not in DTYPES:
        raise CheckpointError(f"{where}.dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    if (
        not isinstance(shape, list)
        or len(shape) > 8
        or not all(type(d) is int and 0 <= d <= max_dim for d in shape)
    ):
        raise CheckpointError(f"{where}.tensor: a shape is a list of at most 8 sizes in 0..{max_dim}")
    if math.prod(shape) > max_elements:
        raise CheckpointError(
            f"{where}.tensor: {shape} holds {math.prod(shape):,} values; the limit is {max_elements:,}"
        )
    if set(node) - {"tensor", "dtype", "values"}:
        raise CheckpointError(f"{where}: a tensor node has only 'tensor', 'dtype' and 'values'")
    if "values" in node:
        _check_values(node["values"], shape, dtype, where)
    count["tensors"] += 1
    if count["tensors"] > MAX_LEAF_TENSORS:
        raise CheckpointError(f"{where}: more than {MAX_LEAF_TENSORS} input tensors")


def _check_values(values: Any, shape: list[int], dtype: str, where: str) -> None:
    """Recorded integer values: one per element, of an integer or bool dtype, within its range."""
    if dtype.startswith("float") or dtype == "bfloat16":
        raise CheckpointError(f"{where}.values: only integer and bool tensors record values")
    if not isinstance(values, list) or len(values) != math.prod(shape) or len(values) > MAX_INT_VALUES:
        raise CheckpointError(
            f"{where}.values: a list of one integer per element (shape {shape}), at most {MAX_INT_VALUES}"
        )
    info = torch.iinfo(DTYPES[dtype]) if dtype != "bool" else None
    lo, hi = (info.min, info.max) if info else (0, 1)
    if not all(type(v) is int and lo <= v <= hi for v in values):
        raise CheckpointError(f"{where}.values: integers within {dtype}'s range {lo}..{hi}")


def check_recorded_inputs(edit: dict[str, Any], where: str, missing: str) -> None:
    """Bound the example inputs an edit recorded; ``missing`` ends the error when it recorded neither kind."""
    for i, shape in enumerate(edit["input_shapes"]):
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            raise CheckpointError(
                f"{where}.input_shapes[{i}]: {shape} holds {math.prod(shape):,} values; the limit is "
                f"{MAX_INPUT_ELEMENTS:,}"
            )
    if "inputs" in edit:
        check_layout(edit["inputs"], f"{where}.inputs", MAX_INPUT_ELEMENTS, MAX_DIM)
    elif not edit["input_shapes"]:
        raise CheckpointError(f"{where}: records neither input_shapes nor an inputs layout{missing}")


def in_model_dtype(inputs: Any, model: torch.nn.Module) -> Any:
    """``inputs`` with float tensors in the model's float dtype: replay traces shapes, and a model
    pruned in float32 then saved as float64 (or the other way) must still replay."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if dtype is None:
        return inputs
    if isinstance(inputs, torch.Tensor):
        return inputs.to(dtype) if inputs.is_floating_point() else inputs
    if type(inputs) in (tuple, list):
        return type(inputs)(in_model_dtype(x, model) for x in inputs)
    if type(inputs) is dict:
        return {k: in_model_dtype(v, model) for k, v in inputs.items()}
    return inputs


def recorded_inputs(edit: dict[str, Any]) -> tuple[Any, ...]:
    """The inputs an edit was traced at: its recorded layout, else zeros of its input shapes.

    Edits written before layouts were recorded, or by a model whose inputs have none, hold only shapes.
    """
    if "inputs" in edit:
        return build_inputs(edit["inputs"])
    return tuple(torch.zeros(shape) for shape in edit["input_shapes"])
