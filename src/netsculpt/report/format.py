"""Numbers as a person reads them: exact counts with separators, short units beside, honest ratios."""

from __future__ import annotations

import json
from typing import Any

MISSING = "\u2014"  # an em dash: "not recorded", never a made-up zero


def percent(value: float | None) -> str:
    return MISSING if value is None else f"{value * 100:.2f} %"


def short(value: float, unit: str = "") -> str:
    """``2293000`` -> ``2.29 M``; bytes use the same decimal prefixes (``1.72 MB``)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:g} {unit}".strip()


def count(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def size(value: int | None) -> str:
    return MISSING if value is None else short(value, "B")


def millis(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.3f} ms" if value < 100 else f"{value:,.1f} ms"


def seconds(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def accuracy_change(before: float | None, after: float | None) -> tuple[str, str]:
    """Text and a CSS class ("good", "bad", "") for an accuracy change in percentage points."""
    if before is None or after is None:
        return MISSING, ""
    pp = (after - before) * 100
    return f"{pp:+.2f} pp", "good" if pp > 0.005 else "bad" if pp < -0.005 else ""


def reduction(before: float | None, after: float | None, smaller: str, larger: str) -> tuple[str, str]:
    """``4.0x smaller`` when ``after`` shrank, ``1.2x larger`` when it grew; class good/bad for colour."""
    if before is None or after is None or before <= 0 or after <= 0:
        return MISSING, ""
    if after <= before:
        ratio = before / after
        return f"{ratio:.2f}\u00d7 {smaller}", "good" if ratio >= 1.005 else ""
    ratio = after / before
    return f"{ratio:.2f}\u00d7 {larger}", "bad" if ratio >= 1.005 else ""


def _prune_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune_empty(v) for k, v in value.items() if v not in (None, {}, [])}
    return value


def setting(value: Any) -> str:
    """A settings value in one short line: scalars as-is, containers as compact JSON without nulls."""
    if isinstance(value, str):
        return value
    text = json.dumps(_prune_empty(value), default=str, separators=(", ", ": "))
    return text if len(text) <= 160 else text[:157] + "..."
