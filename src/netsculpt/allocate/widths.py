"""Width granularity: how kept channel counts are rounded so the pruned model is fast, not just small.

CPU runtimes compute channels in SIMD blocks (ONNX Runtime's NCHWc layout blocks by 16 on AVX-512, 8 on
AVX2; oneDNN in PyTorch likewise), so a layer left with a ragged width pays for the full block and, in
ONNX Runtime, a layout conversion on both sides. ``round_to`` says how kept counts are rounded:

- an integer ``n``: a multiple of ``n`` (capped at the group's size); ``1`` is exact.
- ``"hw"`` (the default): a cheap rule with no measurement, :func:`hw_step` per group.
- ``"auto"``: measured on the target runtime (:mod:`netsculpt.allocate.auto`).
"""

from __future__ import annotations

from typing import Any

from netsculpt.errors import PruningError

ROUND_MODES = ("hw", "auto")
DEFAULT_ROUND_TO = "hw"

RoundTo = int | str


def check_round_to(value: Any) -> RoundTo:
    """``value`` as a valid ``round_to``: an integer >= 1, ``"hw"`` or ``"auto"``."""
    if isinstance(value, str) and value.strip().lower() in ROUND_MODES:
        return value.strip().lower()
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PruningError(
            "round_to must be an integer >= 1 (keep multiples of it), 'hw' (multiples of 8, or 16 for "
            f"groups of 64+ channels) or 'auto' (measured on the target runtime), got {value!r}"
        )
    return int(value)


def hw_step(size: int) -> int:
    """The no-measurement rule: multiples of 16 for groups of 64+ channels (AVX-512 blocks), 8 for groups
    of 16-63 (AVX2 blocks; 16 there would leave too few choices), exact below 16 (tiny layers cost
    little whatever their width, and rounding them would forbid pruning them at all)."""
    if size >= 64:
        return 16
    if size >= 16:
        return 8
    return 1


def group_step(size: int, round_to: RoundTo) -> int:
    """The rounding step of one group of ``size`` channels (``"auto"`` starts from the ``"hw"`` grid)."""
    if isinstance(round_to, str):
        return hw_step(size)
    return max(int(round_to), 1)


def steps_for(graph: Any, round_to: RoundTo) -> dict[str, int]:
    """Group id -> rounding step for every group of ``graph``."""
    round_to = check_round_to(round_to)
    return {g.id: group_step(g.size, round_to) for g in graph.groups}


def next_width(kept: int, step: int, cap: int) -> int:
    """The next width above ``kept`` on the ``step`` grid (a ragged width first snaps up onto it)."""
    return min((kept // step + 1) * step, cap)
