"""How a model-wide sparsity is split between layers when it is not one threshold or one fraction each.

``"erk"`` is the Erdős–Rényi-Kernel rule of Evci et al. (RigL, ICML 2020): a layer's density is
proportional to ``sum(shape) / prod(shape)`` (for a conv ``(c_out + c_in + kh + kw) / (c_out c_in kh kw)``),
so small layers, whose every weight carries more of the signal, stay denser and big ones sparser, while
the model as a whole keeps exactly the asked fraction. It depends on shapes only, so every phase of a ramp
or of GaP gives a layer the same sparsity whatever its weights are doing, unlike one global magnitude
threshold, and a GaP partition pruned on its own lands on the same split as the whole model.
"""

from __future__ import annotations

import math


def erk_sparsities(shapes: dict[str, tuple[int, ...]], sparsity: float) -> dict[str, float]:
    """Per-layer sparsities whose weight-count-weighted mean is ``sparsity``, by the ERK rule.

    A layer the rule would make denser than dense is kept dense and the rest re-solved (RigL's loop).
    """
    if not shapes:
        return {}
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / sizes[n] for n, s in shapes.items()}
    budget = (1.0 - sparsity) * sum(sizes.values())  # weights the whole model keeps
    dense: set[str] = set()
    while True:
        free = [n for n in shapes if n not in dense]
        if not free:  # sparsity ~0: every layer stays dense
            return dict.fromkeys(shapes, 0.0)
        left = budget - sum(sizes[n] for n in dense)  # > 0: a capped layer asked for more than its size
        scale = left / sum(raw[n] * sizes[n] for n in free)
        over = [n for n in free if scale * raw[n] > 1.0]
        if not over:
            break
        dense.update(over)
    return {n: 0.0 if n in dense else max(0.0, 1.0 - scale * raw[n]) for n in shapes}
