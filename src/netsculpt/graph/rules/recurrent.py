"""``nn.LSTM``, ``nn.GRU`` and ``nn.RNN``: input features and hidden units as channels.

Why masking a hidden unit is exact: zeroing its gate rows (both weight matrices and both biases) makes
its pre-activations 0 at every step, so an LSTM unit gets ``c = 0.5 * c_prev + 0.5 * tanh(0) = 0`` and
``h = 0.5 * tanh(0) = 0``, a GRU unit ``h = 0.5 * tanh(0) + 0.5 * h_prev = 0`` and a plain RNN unit
``tanh(0) = relu(0) = 0``, starting from the zero state torch uses when none is passed. A unit that stays
0 adds nothing through the recurrent weights or the next layer's input weights, so removing it computes
the same. The module stores one ``hidden_size`` (and ``proj_size``) for every layer and direction, so
unit ``k`` goes from all of them together.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netsculpt.graph.builder import ROLE_IN, ROLE_OUT, GraphBuilder, Value, nonzero_note
from netsculpt.graph.labels import NO_CHANNEL, along
from netsculpt.graph.registry import Call, register_function_rule, register_module_rule
from netsculpt.graph.rules.common import channel_atoms, channel_zero, set_output

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _grid(ctx: GraphBuilder, out: Value, anchor: np.ndarray) -> None:
    """A state output (layers*dirs, [batch,] width): each row's last dim holds the units ``anchor`` names."""
    rows, width = out.shape[0], out.shape[-1]
    atoms = ctx.fresh(rows * width).reshape(rows, *([1] * (out.ndim - 2)), width)
    ctx.union(atoms, anchor.reshape((1,) * (out.ndim - 1) + (width,)))
    set_output(out, atoms, True)


@register_module_rule(nn.RNNBase)
def recurrent(ctx: GraphBuilder, call: Call) -> None:
    """Input features couple with layer 0's input weights; hidden unit ``k`` owns gate rows ``g*H + k``,
    column ``k`` of the recurrent weights and of the next layer's input weights (once per direction)."""
    m = call.module_obj
    assert isinstance(m, nn.RNNBase)
    gates, dirs = GATES[m.mode], 2 if m.bidirectional else 1
    x, states_in = call.inputs[0], [v for v in call.inputs[1:] if v.ndim >= 2]
    missing = [n for n in m._flat_weights_names if n not in call.params]
    if missing:  # a weight norm or parametrization computes it in forward: no parameter slice to remove
        reason = (
            f"{call.where} uses weights that are not parameters ({', '.join(missing[:2])}): remove the "
            "weight norm or parametrization first (torch.nn.utils.parametrize.remove_parametrizations)"
        )
        for v in call.inputs:
            ctx.block(v.labels, reason)
        for v in call.outputs:
            set_output(v, np.full((1,) * v.ndim, NO_CHANNEL, np.int64), False)
        return
    hidden = ctx.fresh(m.hidden_size)  # the cell's units (the LSTM's c)
    visible = ctx.fresh(m.proj_size) if m.proj_size else hidden  # what h carries, projected or not
    xin = channel_atoms(ctx, x, -1, call.where)
    ctx.consume(
        xin,
        channel_zero(x, -1),
        f"{call.where} reads features that are not zero when masked{nonzero_note(x)}",
    )
    for layer in range(m.num_layers):
        for d in range(dirs):
            sfx = f"_l{layer}{'_reverse' if d else ''}"
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                if f"{name}{sfx}" in call.params:
                    rows = ctx.member(call.params[f"{name}{sfx}"], 0, ROLE_OUT)
                    ctx.union(rows.reshape(gates, -1), hidden[None])
            ctx.union(ctx.member(call.params[f"weight_hh{sfx}"], 1, ROLE_IN), visible)
            if m.proj_size:
                w_hr = call.params[f"weight_hr{sfx}"]
                ctx.union(ctx.member(w_hr, 0, ROLE_OUT), visible)
                ctx.union(ctx.member(w_hr, 1, ROLE_IN), hidden)
            cols = ctx.member(call.params[f"weight_ih{sfx}"], 1, ROLE_IN)
            if layer == 0:
                ctx.couple(xin, cols, f"{call.where} reads {x.origin}")
            else:
                ctx.union(cols.reshape(dirs, -1), visible[None])
    if states_in:
        reason = (
            f"{call.where} is given an initial state: its hidden size is kept (netsculpt removes hidden "
            "units only of a recurrence that starts from zeros, torch's default when no state is passed)"
        )
        ctx.block(np.concatenate([hidden, visible]), reason)
        for v in states_in:
            ctx.block(v.labels, reason)
    out, *rest = call.outputs
    out_atoms = ctx.fresh(dirs * visible.shape[0])
    ctx.union(out_atoms.reshape(dirs, -1), visible[None])
    set_output(out, along(out_atoms, out.ndim - 1, out.ndim), True)
    n_states = 2 if m.mode == "LSTM" else 1
    middle, states = rest[: len(rest) - n_states], rest[len(rest) - n_states :]
    for v in middle:  # a PackedSequence's batch sizes and sort order
        set_output(v, np.full((1,) * v.ndim, NO_CHANNEL, np.int64), False)
    for v, anchor in zip(states, (visible, hidden), strict=False):
        _grid(ctx, v, anchor)


def _leading_free(ctx: GraphBuilder, v: Value, n: int, where: str) -> bool:
    """Do ``v``'s channels live only after its first ``n`` (time / batch) dims? Blocks them if not."""
    if any(v.labels.shape[d] > 1 for d in range(n)):
        ctx.block(v.labels, f"{where} packs a dimension that carries channels")
        return False
    return True


@register_function_rule(torch._pack_padded_sequence)
def pack_padded(ctx: GraphBuilder, call: Call) -> None:
    """(batch, time, *features) -> (tokens, *features): the feature channels pass through, and the padded
    steps are dropped, not computed on."""
    x, (data, *rest) = call.inputs[0], call.outputs
    if _leading_free(ctx, x, 2, call.where):
        set_output(data, x.labels.reshape(x.labels.shape[1:]), np.broadcast_to(x.zero, x.labels.shape)[0])
    else:
        set_output(data, np.full((1,) * data.ndim, NO_CHANNEL, np.int64), False)
    for v in rest:
        set_output(v, np.full((1,) * v.ndim, NO_CHANNEL, np.int64), False)


@register_function_rule(torch._pad_packed_sequence)
def pad_packed(ctx: GraphBuilder, call: Call) -> None:
    """(tokens, *features) -> (batch, time, *features), padded steps filled with ``padding_value``: a
    masked channel stays zero there only if that value is 0."""
    data, (padded, *rest) = call.inputs[0], call.outputs
    if _leading_free(ctx, data, 1, call.where):
        zero = np.broadcast_to(data.zero, data.labels.shape) & (call.arg(3, "padding_value", 0.0) == 0)
        set_output(padded, data.labels[None], zero[None])
    else:
        set_output(padded, np.full((1,) * padded.ndim, NO_CHANNEL, np.int64), False)
    for v in rest:
        set_output(v, np.full((1,) * v.ndim, NO_CHANNEL, np.int64), False)
