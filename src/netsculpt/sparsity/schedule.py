"""Gradual sparsity: Zhu & Gupta's cubic ramp, s_t = s_f + (s_i - s_f) * (1 - t / n)^3."""

from __future__ import annotations

from netsculpt.errors import ConfigError


def cubic_sparsity(step: int, steps: int, final: float, initial: float = 0.0) -> float:
    """Sparsity after ``step`` of ``steps`` pruning steps (step 0: ``initial``; step ``steps``: ``final``).

    The ramp prunes fast while many redundant weights remain and slowly near the target.
    """
    if steps < 1 or not 0 <= step <= steps:
        raise ConfigError(f"cubic schedule needs 0 <= step <= steps and steps >= 1, got {step}/{steps}")
    return final + (initial - final) * (1.0 - step / steps) ** 3
