"""Activation volume: the elements each channel makes the model write, a cost MACs do not show.

A pruned model's time is not its MACs: BatchNorm, activations, depthwise convs and residual adds are
memory-bound, so they cost time in proportion to the elements they write (plus a fixed cost per call in
eager PyTorch). A 1x1 conv's MACs fall with the product of its two widths but its output only with one, so
a plan at 0.5x MACs that spreads its cuts by importance alone still writes ~0.62x the activations of
MobileNetV2 (``benchmarks/across_stack_eager.py``), and runs ~0.75x as fast as its MACs promise on eager
PyTorch at batch 1.

:func:`activation_weights` reads, from the traced graph (no measurement), how many elements each channel
of each group is responsible for across every op output of one forward pass (a conv output, the BatchNorm
and ReLU after it, a residual sum); :func:`activation_fraction` prices a plan with them. The ``"fast"``
allocation strategy (:mod:`netsculpt.allocate.targets`) uses them to prefer cutting channels that write
many elements per MAC — those of early, high-resolution layers.
"""

from __future__ import annotations

import numpy as np

from netsculpt.graph.channel_graph import ChannelGraph

# ops whose output aliases their input (no elements written)
_ZERO_COPY = ("flatten", "view", "reshape", "dropout", "squeeze", "unsqueeze", "permute", "transpose")


def activation_weights(graph: ChannelGraph) -> tuple[dict[str, np.ndarray], float]:
    """Per group, the elements each channel's removal stops the model writing (first order: tensors
    with two pruned channel dims count each dim's share once); and the model's total elements written.
    Per forward pass at the traced batch size."""
    b, comp = graph.builder, graph.resolution.comp
    owner: dict[int, tuple[int, int]] = {}
    for gi, g in enumerate(graph.groups):
        for ch, c in enumerate(g.components.tolist()):
            owner[int(c)] = (gi, ch)
    per = [np.zeros(g.size) for g in graph.groups]
    total = 0.0
    seen: set[int] = set()
    for op in b.ops:
        if any(z in op.name.lower() for z in _ZERO_COPY):
            continue
        for vid in op.outputs:
            v = b.values[vid]
            if vid in seen or v.param is not None or not v.shape:
                continue
            seen.add(vid)
            n = float(np.prod(v.shape, dtype=np.float64))
            total += n
            lab = v.labels
            for d in range(lab.ndim):
                if lab.shape[d] <= 1:
                    continue
                atoms = lab[tuple(slice(None) if i == d else 0 for i in range(lab.ndim))]
                for a in atoms.tolist():
                    hit = owner.get(int(comp[a])) if a >= 0 else None
                    if hit is not None:
                        per[hit[0]][hit[1]] += n / v.shape[d]
    return {g.id: per[gi] for gi, g in enumerate(graph.groups)}, total


def activation_fraction(
    graph: ChannelGraph,
    keep: dict[str, list[int]],
    weights: tuple[dict[str, np.ndarray], float] | None = None,
) -> float:
    """Elements written after ``keep`` as a fraction of the unpruned model's (first order)."""
    per, total = weights or activation_weights(graph)
    removed = 0.0
    for gid, kept in keep.items():
        w = per.get(gid)
        if w is not None:
            mask = np.ones(len(w), dtype=bool)
            mask[np.asarray(kept, dtype=np.int64)] = False
            removed += float(w[mask].sum())
    return max(total - removed, 0.0) / max(total, 1.0)


def activation_price(graph: ChannelGraph, power: float = 0.5) -> dict[str, np.ndarray]:
    """Per group, the factor each channel's normalised score is divided by in the ``"fast"`` ranking:
    ``(elements per channel / mean over prunable channels) ** power``. ``power`` 0.5 (square root) halves
    the standing of a channel that writes 4x the average, so importance still decides within a layer
    and between layers of similar size. Floored at 1/16 so a channel writing nothing is not untouchable."""
    per, _ = activation_weights(graph)
    prunable = [per[g.id][g.prunable] for g in graph.prunable_groups]
    mean = float(np.concatenate(prunable).mean()) if prunable else 1.0
    return {gid: np.maximum(w / max(mean, 1e-12), 1 / 16) ** power for gid, w in per.items()}
