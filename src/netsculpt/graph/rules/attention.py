"""Attention: scaled dot-product attention and ``nn.MultiheadAttention``'s functional core."""

from __future__ import annotations

import string

import numpy as np
import torch.nn.functional as F

from netsculpt.graph.builder import ROLE_IN, ROLE_OUT, GraphBuilder, Value
from netsculpt.graph.labels import NO_CHANNEL, along
from netsculpt.graph.registry import Call, register_function_rule
from netsculpt.graph.rules.common import align, channel_atoms, merge_elementwise, set_output
from netsculpt.graph.rules.contract import contract


@register_function_rule(F.scaled_dot_product_attention)
def sdpa(ctx: GraphBuilder, call: Call) -> None:
    """softmax(q k^T * scale) v: q and k share their last dim (inexact: scale follows it); v's carry on."""
    q, k, v = call.arg(0, "query"), call.arg(1, "key"), call.arg(2, "value")
    out = call.outputs[0]
    if call.arg(8, "enable_gqa", False):
        k, v = _repeat_heads(k, q), _repeat_heads(v, q)
    batch = string.ascii_lowercase[: q.ndim - 2]
    logits = Value(
        -1,
        (*q.shape[:-1], k.shape[-2]),
        np.full((1,) * q.ndim, NO_CHANNEL),
        np.zeros((1,) * q.ndim, bool),
        "",
    )
    contract(ctx, [(q, batch + "LE"), (k, batch + "SE")], batch + "LS", logits, call.where)
    mask = call.arg(3, "attn_mask")
    if isinstance(mask, Value):
        if (logits.labels >= 0).any():
            # whole heads: the mask's head dim loses them too (a bias table or an MLP's outputs, sliced
            # with the head), or pins them; its channels on other dims meet none and are pinned. A masked
            # head's output stays zero whatever its mask: its values are zero.
            ops = [align(logits, logits.ndim), align(mask, logits.ndim)]
            logits.labels, _ = merge_elementwise(ctx, ops, logits.shape, "sum", call.where)
        else:  # e.g. a relative position bias whose head dim comes out of an MLP, heads written as numbers
            ctx.block(mask.labels, f"{call.where} adds it to the attention logits, whose size is fixed")
    # softmax makes masked logits nonzero; their labels stay (whole heads tie q, k and v head by head)
    logits.zero = np.zeros(logits.labels.shape, bool)
    contract(ctx, [(logits, batch + "LS"), (v, batch + "SV")], batch + "LV", out, call.where)


def _repeat_heads(kv: Value, q: Value) -> Value:
    """Key/value as SDPA's ``enable_gqa`` reads them: head ``h`` serves query heads ``h*r .. h*r+r-1``.

    The same mapping as ``repeat_interleave(r, dim=-3)`` (and as Hugging Face's ``repeat_kv``), so a key
    head's channels stay one channel in every query head it serves and contract() sees equal sizes.
    """
    if kv.ndim < 3 or q.ndim < 3 or kv.shape[-3] == q.shape[-3] or q.shape[-3] % kv.shape[-3]:
        return kv  # nothing to repeat, or not a GQA layout: contract() pins unequal sizes with a reason
    r = q.shape[-3] // kv.shape[-3]
    shape = (*kv.shape[:-3], q.shape[-3], *kv.shape[-2:])
    lab = kv.labels.reshape((1,) * (kv.ndim - kv.labels.ndim) + kv.labels.shape)
    zero = np.broadcast_to(kv.zero, lab.shape)
    if lab.shape[-3] > 1:
        lab, zero = np.repeat(lab, r, axis=-3), np.repeat(zero, r, axis=-3)
    bcast = kv.bcast or (False,) * kv.ndim
    return Value(-1, shape, lab, zero, kv.origin, bcast=bcast)


@register_function_rule(F.multi_head_attention_forward)
def multi_head_attention(ctx: GraphBuilder, call: Call) -> None:
    """``nn.MultiheadAttention`` requires its inner width to equal ``embed_dim``: they prune together.

    Without averaged attention weights (``need_weights=False``, as ``nn.TransformerEncoderLayer`` calls
    it) whole heads go, exactly: head ``h`` owns its q/k/v rows, its out_proj columns and the ``head_dim``
    input channels of the same positions (graph/rules/heads.py), and ``num_heads`` follows. Returned
    weights average over every head, masked ones too (and a 3-D ``attn_mask`` holds one mask per head),
    so then head-dim positions go from every head alike, which changes the 1/sqrt(head_dim) scale: inexact.
    """
    query, key, value = call.args[0], call.args[1], call.args[2]
    heads = call.arg(4, "num_heads")
    w_in, b_in = call.arg(5, "in_proj_weight"), call.arg(6, "in_proj_bias")
    bias_k = call.arg(7, "bias_k")
    w_out, b_out = call.arg(11, "out_proj_weight"), call.arg(12, "out_proj_bias")
    separate = call.arg(17, "use_separate_proj_weight", False)
    mask = call.arg(16, "attn_mask")
    per_head_mask = isinstance(mask, Value) and mask.ndim == 3  # (batch * num_heads, L, S): heads fixed
    whole_heads = not call.arg(15, "need_weights", True) and not per_head_mask
    outs = call.outputs
    if separate or isinstance(bias_k, Value) or not isinstance(w_in, Value):
        for x in call.inputs:
            ctx.block(x.labels, f"{call.where}: separate q/k/v projections or bias_k are not supported")
        for o in outs:
            set_output(o, np.full((1,) * o.ndim, NO_CHANNEL, np.int64), False)
        return
    e_atoms = channel_atoms(ctx, query, -1, call.where)
    for other in (key, value):
        if other is not query:
            ctx.couple(e_atoms, channel_atoms(ctx, other, -1, call.where), call.where)
    ctx.couple(e_atoms, ctx.member(w_in, 1, ROLE_IN), call.where)
    inner = ctx.member(w_in, 0, ROLE_OUT)
    e = e_atoms.shape[0]
    if whole_heads:
        ctx.tie_across(inner.reshape(3, heads, e // heads), [0, 2], 1)
        _heads_follow(ctx, call, inner.reshape(3, heads, -1)[0, :, 0])
    else:
        ctx.tie_across(inner.reshape(3, heads, e // heads), [0, 1], 2)
        ctx.block(e_atoms, f"{call.where} scales attention by 1/sqrt(head_dim)", soft=True)
    ctx.couple(inner[:e], e_atoms, f"{call.where} needs its inner width to equal embed_dim")
    if isinstance(b_in, Value):
        ctx.union(ctx.member(b_in, 0, ROLE_OUT), inner)
    ctx.union(ctx.member(w_out, 1, ROLE_IN), inner[2 * e :])
    out_atoms = ctx.member(w_out, 0, ROLE_OUT)
    if isinstance(b_out, Value):
        ctx.union(ctx.member(b_out, 0, ROLE_OUT), out_atoms)
    set_output(outs[0], along(out_atoms, outs[0].ndim - 1, outs[0].ndim), True)
    for o in outs[1:]:
        set_output(o, np.full((1,) * o.ndim, NO_CHANNEL, np.int64), False)


def _heads_follow(ctx: GraphBuilder, call: Call, head_atoms: np.ndarray) -> None:
    """Record ``num_heads`` as the size of a (heads,) value, so the surgery rewrites it (heads.py)."""
    v = Value(len(ctx.values), (head_atoms.shape[0],), head_atoms.copy(), np.ones(1, bool), call.where)
    ctx.values.append(v)
    ctx.attr_sizes.append((call.module, "num_heads", v.id, 0))
