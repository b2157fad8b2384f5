"""Contractions: linear, matmul, bmm, einsum — one implementation for all of them.

Every contraction is written as an einsum over letters. A letter summed away couples the channels of
the operands that carry it (removing input feature ``i`` of a Linear removes column ``i`` of its weight).
Letters kept in the output carry channels through; a parameter's kept letter creates new channels (the
Linear's output features).
"""

from __future__ import annotations

import string

import numpy as np
import torch
import torch.nn.functional as F

from netsculpt.graph.builder import ROLE_IN, ROLE_OUT, GraphBuilder, Value, nonzero_note
from netsculpt.graph.labels import NO_CHANNEL
from netsculpt.graph.registry import Call, register_function_rule, tensor_methods
from netsculpt.graph.rules.common import Operand, merge_elementwise, set_output


def _layout(v: Value, letters: str, all_letters: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels and zero-status of ``v`` laid out over ``all_letters`` (size 1 where ``v`` lacks a letter)."""
    lab = v.labels
    zero = np.broadcast_to(v.zero, lab.shape)
    order = [letters.index(c) for c in all_letters if c in letters]
    if lab.ndim > 1:
        lab, zero = np.transpose(lab, order), np.transpose(zero, order)
    shape = [lab.shape[order.index(letters.index(c))] if c in letters else 1 for c in all_letters]
    return lab.reshape(shape), zero.reshape(shape)


def _mismatched_letters(operands: list[tuple[Value, str]], out_letters: str, out: Value) -> str:
    """Letters whose sizes differ between operands (and are not 1, i.e. not plain broadcasting).

    The rules below pair channel positions letter by letter, so they need equal sizes: a contraction that
    pairs a dim of 2 with one of 4 (grouped-query attention handing SDPA fewer key heads than query
    heads, with ``enable_gqa``) is an index mapping the caller has to spell out first.
    """
    sizes: dict[str, set[int]] = {}
    for v, letters in [*operands, (out, out_letters)]:
        for c, n in zip(letters, v.shape):
            if n != 1:
                sizes.setdefault(c, set()).add(n)
    return "".join(c for c, ns in sizes.items() if len(ns) > 1)


def _refuse_mismatch(
    ctx: GraphBuilder, operands: list[tuple[Value, str]], out: Value, letters: str, where: str
) -> None:
    """Pin every operand's channels, with the sizes that did not match, instead of guessing a mapping."""
    shapes = ", ".join(f"{lt} {tuple(v.shape)}" for v, lt in operands)
    reason = (
        f"{where} pairs dims of different sizes ({letters!r} in {shapes}), which netsculpt does not follow"
    )
    for v, _ in operands:
        ctx.block(v.labels, reason)
    set_output(out, np.full((1,) * out.ndim, NO_CHANNEL, np.int64), False)


def contract(
    ctx: GraphBuilder, operands: list[tuple[Value, str]], out_letters: str, out: Value, where: str
) -> None:
    mismatched = _mismatched_letters(operands, out_letters, out)
    if mismatched:
        _refuse_mismatch(ctx, operands, out, mismatched, where)
        return
    all_letters = "".join(dict.fromkeys("".join(lt for _, lt in operands) + out_letters))
    summed = [c for c in all_letters if c not in out_letters]
    # buffers fed into a contraction are data (e.g. Swin-v2's coordinate table), not weights
    acts = [(v, lt) for v, lt in operands if v.param is None or v.is_buffer]
    params = [(v, lt) for v, lt in operands if v.param is not None and not v.is_buffer]

    # 1. summed letters couple whatever carries them
    for c in summed:
        act_labels = [(*_layout(v, lt, all_letters), v) for v, lt in acts if c in lt]
        ci = all_letters.index(c)
        for v, lt in params:
            if c not in lt or v.shape[lt.index(c)] == 1:
                continue
            atoms = ctx.member(v, lt.index(c), ROLE_IN)
            shape = [1] * len(all_letters)
            shape[ci] = atoms.shape[0]
            for lab, zero, act in act_labels:
                if any(n > 1 and i != ci for i, n in enumerate(lab.shape)):
                    ctx.block(lab, f"{where} reads channels spread over several dimensions")
                    ctx.block(atoms, f"{where} reads channels spread over several dimensions")
                    continue
                ctx.couple(lab, atoms.reshape(shape), f"{where} reads {act.origin}")
                ctx.consume(
                    lab, zero, f"{where} reads channels that are not zero when masked{nonzero_note(act)}"
                )
        if len(act_labels) >= 2:
            # activation x activation (attention logits): the caller usually scales by 1/sqrt(dim). Only
            # the operands whose channels run along ``c`` are summed over them: attention's value carries
            # its channels on another letter, past the summed key positions
            carrying = [lab for lab, _, _ in act_labels if lab.shape[ci] > 1]
            if len(carrying) < len(act_labels):
                for lab in carrying:
                    ctx.block(lab, f"{where} multiplies a channel with a non-channel")
                continue
            for lab in carrying[1:]:
                ctx.couple(
                    *np.broadcast_arrays(carrying[0], lab), f"{where} multiplies a channel with a non-channel"
                )
            for lab in carrying:
                ctx.block(
                    lab,
                    f"{where} contracts two activations over these channels (attention-style "
                    "products are scaled by their width)",
                    soft=True,
                )
        elif len(act_labels) == 1 and not any(c in lt for _, lt in params):
            ctx.block(act_labels[0][0], f"{where} sums these channels against a constant", soft=True)

    # 2. kept letters: each operand contributes its channels on letters that survive
    out_ops: list[Operand] = []
    nd = len(out_letters)
    for v, lt in operands:
        if v.param is not None and not v.is_buffer:
            free = [c for c in lt if c in out_letters and v.shape[lt.index(c)] > 1]
            shape = [1] * nd
            if free:
                c = free[0]
                atoms = ctx.member(v, lt.index(c), ROLE_OUT)
                shape[out_letters.index(c)] = atoms.shape[0]
                lab = atoms.reshape(shape)
                zero = np.ones(shape, bool)
                op_shape = tuple(v.shape[lt.index(c2)] if c2 in lt else 1 for c2 in out_letters)
                out_ops.append(Operand(lab, zero, op_shape, (False,) * nd, None))
            continue
        lab, zero = _layout(v, lt, all_letters)
        carries_summed = any(lab.shape[all_letters.index(c)] > 1 for c in summed)
        keep_idx = tuple(0 if c in summed else slice(None) for c in all_letters)
        lab, zero = lab[keep_idx], zero[keep_idx]
        if carries_summed:
            lab = np.full((1,) * nd, NO_CHANNEL, np.int64)
            zero = np.zeros((1,) * nd, bool)
        op_shape = tuple(v.shape[lt.index(c)] if c in lt else 1 for c in out_letters)
        perm = [[c for c in all_letters if c not in summed].index(c) for c in out_letters]
        out_ops.append(
            Operand(np.transpose(lab, perm), np.transpose(zero, perm), op_shape, (False,) * nd, None)
        )
    labels, zero = merge_elementwise(ctx, out_ops, out.shape, "product", where)
    set_output(out, labels, zero)


@register_function_rule(F.linear, torch._C._nn.linear)
def linear(ctx: GraphBuilder, call: Call) -> None:
    x, w = call.arg(0, "input"), call.arg(1, "weight")
    b = call.arg(2, "bias")
    out = call.outputs[0]
    batch = string.ascii_lowercase[: x.ndim - 1]
    contract(ctx, [(x, batch + "z"), (w, "yz")], batch + "y", out, call.where)
    if isinstance(b, Value):
        ctx.union(ctx.member(b, 0, ROLE_OUT), ctx.member(w, 0, ROLE_OUT))


def _matmul_letters(a: int, b: int) -> tuple[str, str, str]:
    if a == 1 and b == 1:
        return "k", "k", ""
    if a == 1:
        batch = string.ascii_lowercase[: b - 2]
        return "k", batch + "km", batch + "m"
    if b == 1:
        batch = string.ascii_lowercase[: a - 2]
        return batch + "nk", "k", batch + "n"
    n = max(a, b) - 2
    batch = string.ascii_lowercase[:n]
    return batch[n - (a - 2) :] + "NK", batch[n - (b - 2) :] + "KM", batch + "NM"


@register_function_rule(*tensor_methods("matmul", "mm", "bmm", "__matmul__", "__rmatmul__"))
def matmul(ctx: GraphBuilder, call: Call) -> None:
    a, b = call.args[0], call.args[1]
    if call.name.endswith("__rmatmul__"):
        a, b = b, a
    la, lb, lo = _matmul_letters(a.ndim, b.ndim)
    contract(ctx, [(a, la), (b, lb)], lo, call.outputs[0], call.where)


@register_function_rule(*tensor_methods("addmm", "baddbmm", "addbmm"))
def addmm(ctx: GraphBuilder, call: Call) -> None:
    """``beta * input + alpha * (a @ b)``; the factors may come as keywords (Bloom's
    ``alibi.baddbmm(batch1=q, batch2=k, beta=..., alpha=...)``: they were read by position)."""
    first = "mat" if call.name.endswith("addmm") else "batch"
    bias, a, b = call.arg(0, "input"), call.arg(1, f"{first}1"), call.arg(2, f"{first}2")
    out = call.outputs[0]
    la, lb, lo = _matmul_letters(a.ndim, b.ndim)
    tmp = Value(-1, out.shape, np.full((1,) * out.ndim, -1), np.zeros((1,) * out.ndim, bool), "product")
    contract(ctx, [(a, la), (b, lb)], lo, tmp, call.where)
    from netsculpt.graph.rules.common import align

    labels, zero = merge_elementwise(
        ctx, [align(tmp, out.ndim), align(bias, out.ndim)], out.shape, "sum", call.where
    )
    set_output(out, labels, zero)


@register_function_rule(torch.einsum, torch.functional.einsum)
def einsum(ctx: GraphBuilder, call: Call) -> None:
    equation = call.args[0].replace(" ", "")
    ops = call.args[1:]
    if len(ops) == 1 and isinstance(ops[0], list | tuple):
        ops = ops[0]
    lhs, _, rhs = equation.partition("->")
    terms = lhs.split(",")
    if "..." in equation or (not rhs and "->" not in equation):
        for v in call.inputs:
            ctx.block(v.labels, f"{call.where} uses an einsum form netsculpt does not follow")
        return
    contract(ctx, list(zip(ops, terms)), rhs, call.outputs[0], call.where)


_GROUPED_MM = [
    f for f in (getattr(torch, "_grouped_mm", None), getattr(F, "grouped_mm", None)) if f is not None
]


def grouped_mm(ctx: GraphBuilder, call: Call) -> None:
    """``out[r] = a[r] @ b[e(r)]``, ``e(r)`` the expert whose ``offs`` range holds row ``r`` (Hugging Face's
    mixture-of-experts layers): channel-wise a matmul whose weight holds one matrix per expert, so a
    channel leaves every expert together. The expert dim is chosen by position (the router), so it stays."""
    a, b = call.arg(0, "mat_a"), call.arg(1, "mat_b")
    if not (isinstance(a, Value) and isinstance(b, Value) and a.ndim == 2 and b.ndim == 3):
        for v in call.inputs:
            ctx.block(v.labels, f"{call.where} is a grouped matmul form netsculpt does not follow")
        set_output(call.outputs[0], np.full((1,) * call.outputs[0].ndim, NO_CHANNEL, np.int64), False)
        return
    letters = "ekn"
    if (
        b.param is None
        and b.view_of is not None
        and sorted(d for d in b.view_of[1] if d is not None) == [0, 1, 2]
    ):
        # the weight transposed to (experts, in, out): contract the parameter itself, letters permuted
        base, dims = b.view_of
        b, letters = ctx.values[base], "".join(letters[dims.index(j)] for j in range(3))
    where = f"{call.where} routes rows to experts along this dimension"
    if b.param is not None and not b.is_buffer and b.shape[letters.index("e")] > 1:
        ctx.block(ctx.member(b, letters.index("e"), ROLE_IN), where)
    else:
        ctx.block(b.labels, where)
    contract(ctx, [(a, "sk"), (b, letters)], "sn", call.outputs[0], call.where)


if _GROUPED_MM:
    register_function_rule(*_GROUPED_MM)(grouped_mm)
