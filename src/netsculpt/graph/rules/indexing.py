"""Rules for ops that select or join elements: indexing, narrow, split, concat and stack."""

from __future__ import annotations

import numpy as np
import torch

from netsculpt.graph.builder import GraphBuilder, Value
from netsculpt.graph.labels import NO_CHANNEL, apply_basic_index, expand_to
from netsculpt.graph.registry import Call, register_function_rule, tensor_methods
from netsculpt.graph.rules import heads
from netsculpt.graph.rules.common import (
    align,
    label_param_operand,
    merge_elementwise,
    set_output,
    values_in,
)


def _narrow(ctx: GraphBuilder, x: Value, out: Value, index: tuple, where: str) -> None:
    labels, narrowed = apply_basic_index(x.labels, x.shape, index)
    zero, _ = apply_basic_index(np.broadcast_to(x.zero, x.labels.shape), x.shape, index)
    for d in narrowed:
        ctx.keep_dim(x.labels, d, f"{where} selects fixed positions along this dimension")
    set_output(out, labels, zero)


def _has_advanced(index: tuple) -> bool:
    return any(
        isinstance(k, Value | list | np.ndarray | torch.Tensor) or k is True or k is False for k in index
    )


@register_function_rule(torch.Tensor.__getitem__)
def getitem(ctx: GraphBuilder, call: Call) -> None:
    x = call.args[0]
    out = call.outputs[0]
    index = call.args[1] if isinstance(call.args[1], tuple) else (call.args[1],)
    if not _has_advanced(index):
        _narrow(ctx, x, out, index, call.where)
        return
    # Advanced (tensor) indexing gathers arbitrary positions: channels along indexed dims are pinned;
    # dims left as full slices keep their channels.
    simple = all((isinstance(k, slice) and k == slice(None)) or _has_advanced((k,)) for k in index)
    indexed = [d for d, k in enumerate(index) if _has_advanced((k,))]
    if x.param is not None and not (x.labels >= 0).any():
        # a parameter table looked up by index (e.g. relative position bias): its other dims are free
        set_output(out, np.full((1,) * out.ndim, -1, np.int64), False)
        out.view_of = _table_rows(x, out, index, indexed)
        return
    masks = [(i, k) for i, k in enumerate(index) if isinstance(k, Value) and k.ndim > 1]
    if len(masks) == 1 and simple and indexed == [masks[0][0]] and out.ndim == x.ndim - masks[0][1].ndim + 1:
        # a boolean mask over several dims (``h[eos_mask]``; VITS' flows: ``x[mask]``) flattens the
        # elements it picks into one dim: channels elsewhere stay, channels it covers cannot
        d, j = masks[0][0], masks[0][1].ndim
        lab, zero = x.labels, np.broadcast_to(x.zero, x.labels.shape)
        if any(n > 1 for n in lab.shape[d : d + j]):
            ctx.block(lab, f"{call.where} gathers positions with a tensor index")
            set_output(out, np.full((1,) * out.ndim, -1, np.int64), False)
            return
        shape = (*lab.shape[:d], 1, *lab.shape[d + j :])
        set_output(out, lab.reshape(shape), zero.reshape(shape))
        return
    d, n = indexed[0], len(indexed)
    # several tensor indices side by side (``feats[batch_ind, topk_ind]``, RT-DETR's query selection)
    # are broadcast together and their result takes their place; apart, it would move to the front
    if not simple or any(x.labels.shape[i] > 1 for i in indexed) or indexed != list(range(d, d + n)):
        ctx.block(x.labels, f"{call.where} gathers positions with a tensor index")
        set_output(out, np.full((1,) * out.ndim, -1, np.int64), False)
        return
    kept = x.labels.shape[:d] + x.labels.shape[d + n :]  # the indexed dims carry no channels: size 1
    gathered = tuple(range(d, d + out.ndim - (x.ndim - n)))
    lab = np.expand_dims(x.labels.reshape(kept), gathered)
    zero = np.expand_dims(np.broadcast_to(x.zero, x.labels.shape).reshape(kept), gathered)
    set_output(out, lab, zero)


def _table_rows(x: Value, out: Value, index: tuple, indexed: list[int]) -> tuple | None:
    """``table[idx]`` gathers whole rows: the dims after the indexed ones are the table's own.

    Swin's relative-position bias table ``(positions, heads)`` is read as ``table[idx]``, viewed to
    ``(N, N, heads)`` and permuted onto the attention logits' head dim; recording which output dims show
    which table dims (as ``gamma.view(...)`` does, graph/rules/shape.py) lets the table lose the heads
    they are added to. Only leading tensor indices with the other dims whole are followed.
    """
    n = len(indexed)
    whole = all(isinstance(k, slice) and k == slice(None) for k in index[n:])
    if indexed != list(range(n)) or not whole:
        return None
    gathered = out.ndim - (x.ndim - n)
    mapping = (None,) * gathered + tuple(range(n, x.ndim))
    return (x.id, mapping) if len(mapping) == out.ndim and gathered >= 0 else None


@register_function_rule(torch.Tensor.__setitem__)
def setitem(ctx: GraphBuilder, call: Call) -> None:
    x, index, value = call.args[0], call.args[1], call.args[2]
    index = index if isinstance(index, tuple) else (index,)
    if _has_advanced(index) and _rows_written(ctx, x, index, value, call.where):
        return
    if _has_advanced(index):
        ctx.block(x.labels, f"{call.where} writes positions chosen by a tensor index")
        if isinstance(value, Value):
            ctx.block(value.labels, f"{call.where} writes it into positions chosen by a tensor index")
        return
    region, narrowed = apply_basic_index(x.labels, x.shape, index)
    for d in narrowed:
        ctx.keep_dim(x.labels, d, f"{call.where} writes fixed positions along this dimension")
    written_zero = bool(np.all(value.zero)) if isinstance(value, Value) else value == 0
    if not written_zero and (x.labels >= 0).any():
        # a nonzero write (a constant, or values that stay nonzero when masked) leaves x's channels
        # nonzero under masking; conservatively for the whole tensor, so mixing consumers soft-pin
        x.zero = np.zeros_like(x.zero)
    if isinstance(value, Value):
        region_shape = (
            tuple(np.empty(x.shape, dtype=np.bool_)[index].shape) if x.labels.size < 2**20 else None
        )
        if region_shape is None:
            ctx.block(value.labels, f"{call.where} assigns into a large tensor")
            return
        ops = [align(value, len(region_shape))]
        reg = Value(-1, region_shape, region, np.ones_like(region, bool), "region")
        merge_elementwise(ctx, [align(reg, len(region_shape)), *ops], region_shape, "none", call.where)


def _rows_written(ctx: GraphBuilder, x: Value, index: tuple, value: object, where: str) -> bool:
    """``out[idx] = v`` with one tensor index on a leading dim that carries no channels (rows of RoIs,
    boxes, tokens): the written region keeps ``out``'s trailing dims, so ``v``'s channels there are
    ``out``'s, element-wise. Anything else is left to the caller, which pins it."""
    if len(index) != 1 or not isinstance(index[0], Value) or not isinstance(value, Value):
        return False
    idx = index[0]
    if x.labels.shape[0] != 1 or idx.ndim < 1 or idx.labels.size != 1 or (idx.labels >= 0).any():
        return False
    trailing = x.labels.shape[1:]
    if value.ndim < len(trailing) or tuple(value.shape[value.ndim - len(trailing) :]) != x.shape[1:]:
        return False
    if any(s > 1 for s in value.labels.shape[: value.ndim - len(trailing)]):
        return False  # the value's channels lie along the written rows, not along out's channel dims
    region_shape = tuple(value.shape)
    region = x.labels.reshape((1,) * (value.ndim - len(trailing)) + trailing)
    reg = Value(-1, region_shape, region, np.ones_like(region, bool), "region")
    merge_elementwise(ctx, [align(reg, value.ndim), align(value, value.ndim)], region_shape, "none", where)
    # ``out`` stays zero under masking only where every written value is
    lead = tuple(range(value.ndim - len(trailing)))
    written = np.all(np.broadcast_to(value.zero, value.labels.shape), axis=lead)
    flat = tuple(d for d, n in enumerate(trailing) if n == 1)
    written = np.all(np.broadcast_to(written, trailing), axis=flat, keepdims=True)
    x.zero = np.broadcast_to(x.zero, x.labels.shape) & written[None]
    return True


@register_function_rule(*tensor_methods("narrow", "select", "index_select"))
def narrow(ctx: GraphBuilder, call: Call) -> None:
    x = call.inputs[0]
    out = call.outputs[0]
    dim = call.arg(1, "dim") % x.ndim
    name = call.name.rsplit(".", 1)[-1]
    if name == "narrow":
        start, length = call.arg(2, "start"), call.arg(3, "length")
        if isinstance(start, Value) or isinstance(length, Value):
            # a 0-d tensor start or length (Longformer's chunks): the output's size is known, its
            # offset is not, so a channel dim keeps every channel
            if x.labels.shape[dim] > 1 and isinstance(start, Value):
                ctx.keep_dim(x.labels, dim, f"{call.where} selects positions at a tensor offset")
            start, length = 0 if isinstance(start, Value) else start, out.shape[dim]
        k: object = slice(start, start + length)
    elif name == "select":
        k = call.arg(2, "index")
    else:
        ctx.block(x.labels, f"{call.where} gathers positions with a tensor index") if x.labels.shape[
            dim
        ] > 1 else None
        lab = x.labels
        # rows gathered along a dim without channels (the batch reordered by pack_padded_sequence's
        # enforce_sorted=False) are copies within each channel: a masked channel stays zero
        zero = np.broadcast_to(x.zero, lab.shape) if lab.shape[dim] == 1 and out.ndim == x.ndim else False
        set_output(out, lab if out.ndim == x.ndim else lab.reshape(out.ndim * (1,)), zero)
        return
    _narrow(ctx, x, out, (slice(None),) * dim + (k,), call.where)


def _split_dim(call: Call, x: Value) -> int:
    return call.arg(2, "dim", 0) % x.ndim


@register_function_rule(
    *tensor_methods("split", "split_with_sizes", "chunk", "unbind", "tensor_split", "hsplit")
)
def split(ctx: GraphBuilder, call: Call) -> None:
    """``chunk(n)`` recomputes piece sizes from the current size, so pieces may shrink uniformly; so
    may equal pieces of a size read from a width attribute the surgery rewrites (GPT-2's
    ``split(self.split_size, dim=2)``). A split with fixed sizes (or ``unbind``) pins the dimension."""
    x = call.inputs[0]
    name = call.name.rsplit(".", 1)[-1]
    dim = (call.arg(1, "dim", 0) if name == "unbind" else _split_dim(call, x)) % x.ndim
    lab = x.labels
    zero = np.broadcast_to(x.zero, lab.shape)
    varies = lab.shape[dim] > 1
    n = len(call.outputs)
    by_attribute = _attribute_pieces(call, x, dim) if varies and name == "split" else None
    if varies and ((name == "chunk" and x.shape[dim] % n == 0) or by_attribute is not None):
        # piece k's position j is piece 0's: they go together, and the pieces stay equal
        shaped = np.moveaxis(lab, dim, 0).reshape(n, x.shape[dim] // n, -1)
        for k in range(1, n):
            ctx.union(shaped[0], shaped[k])
        if by_attribute is not None:
            ctx.attr_sizes.append((by_attribute.module, by_attribute.name, call.outputs[0].id, dim))
    elif varies:
        ctx.keep_dim(lab, dim, f"{call.where} splits this dimension at fixed sizes")
    offset = 0
    for out in call.outputs:
        size = 1 if name == "unbind" else out.shape[dim]
        if varies:
            sl = [slice(None)] * lab.ndim
            sl[dim] = slice(offset, offset + size)
            piece_l, piece_z = lab[tuple(sl)], zero[tuple(sl)]
        else:
            piece_l, piece_z = lab, zero
        if name == "unbind":
            piece_l, piece_z = np.take(piece_l, 0, axis=dim), np.take(piece_z, 0, axis=dim)
        set_output(out, piece_l, piece_z)
        offset += size


def _attribute_pieces(call: Call, x: Value, dim: int) -> heads.SizeAttribute | None:
    """The piece size of ``split(self.split_size, dim)`` when it is a marked width attribute (heads.py)
    and cuts ``dim`` into two or more equal pieces: the surgery then rewrites it to the pruned piece."""
    size = call.arg(1, "split_size", call.kwargs.get("split_size_or_sections"))
    if not isinstance(size, heads.SizeAttribute) or not heads.says_width(size.name):
        return None
    return size if size > 0 and x.shape[dim] % size == 0 and x.shape[dim] // size > 1 else None


@register_function_rule(*tensor_methods("cat", "concat", "concatenate"))
def cat(ctx: GraphBuilder, call: Call) -> None:
    tensors = values_in(call.arg(0, "tensors"))
    out = call.outputs[0]
    dim = call.arg(1, "dim", 0) % out.ndim
    # torch ignores legacy empty 1-D tensors; an empty piece (Phi-3's ``q[..., rotary_dim:]`` when the
    # rotary embedding covers the whole head) adds no element, and its 0-size labels broadcast with nothing
    tensors = [t for t in tensors if t.ndim == out.ndim and t.shape[dim] > 0]
    if not tensors:
        set_output(out, np.full((1,) * out.ndim, NO_CHANNEL, np.int64), False)
        return
    other = [d for d in range(out.ndim) if d != dim and any(t.labels.shape[d] > 1 for t in tensors)]
    for t in tensors:  # a parameter concatenated as rows (ViT's class token) follows the row channels
        label_param_operand(ctx, align(t, t.ndim), other, t.shape)
    rows: np.ndarray | None = None  # the rows' channels, once coupled: one atom id per channel
    if other:
        # channels along another dim: every input must keep the same ones (they are stacked rows)
        shape = tuple(out.shape[d] if d in other else 1 for d in range(out.ndim))
        for t in tensors:
            if t.labels.shape[dim] > 1:
                ctx.block(t.labels, f"{call.where} concatenates tensors with channels on two dimensions")
                continue
            r = np.broadcast_to(t.labels, shape)
            reason = f"{call.where} concatenates a tensor without these channels"
            rows = r if rows is None else ctx.couple(rows, r, reason)
    pieces_l, pieces_z = [], []
    for t in tensors:
        shape = [out.shape[d] if (t.labels.shape[d] > 1 or d in other) else 1 for d in range(out.ndim)]
        shape[dim] = t.shape[dim]
        # the same atoms in every row (a class token's own atoms were only unioned with the patches'),
        # so the output's channels stay on one dim for the layers that read them
        same = rows is not None and t.labels.shape[dim] == 1
        pieces_l.append(expand_to(rows if same else t.labels, shape))
        pieces_z.append(expand_to(np.broadcast_to(t.zero, t.labels.shape), shape))
    full = [max(p.shape[d] for p in pieces_l) if d != dim else 0 for d in range(out.ndim)]
    pieces_l = [
        expand_to(p, [full[d] if d != dim else p.shape[d] for d in range(out.ndim)]) for p in pieces_l
    ]
    pieces_z = [
        expand_to(p, [full[d] if d != dim else p.shape[d] for d in range(out.ndim)]) for p in pieces_z
    ]
    set_output(out, np.concatenate(pieces_l, axis=dim), np.concatenate(pieces_z, axis=dim))


@register_function_rule(*tensor_methods("stack"))
def stack(ctx: GraphBuilder, call: Call) -> None:
    """Stacked tensors become rows of one tensor: they must keep the same channels."""
    tensors = values_in(call.arg(0, "tensors"))
    out = call.outputs[0]
    dim = call.arg(1, "dim", 0) % out.ndim
    ops = [align(t, t.ndim) for t in tensors]
    labels, zero = merge_elementwise(ctx, ops, tensors[0].shape, "sum", call.where)
    set_output(out, np.expand_dims(labels, dim), np.expand_dims(zero, dim))
