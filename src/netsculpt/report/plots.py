"""The report's charts, drawn with matplotlib's Agg canvas and returned as PNG data URIs.

Figures are built with the object API (``Figure`` + ``FigureCanvasAgg``), never ``pyplot``: no global
state, no backend switch, nothing a user's own matplotlib session could disturb or be disturbed by.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, FuncFormatter, MaxNLocator, NullFormatter, PercentFormatter

from netsculpt.report.pareto import pareto_front
from netsculpt.report.run import LayerWidth, Point

WIDTHS_DPI = 150
TRADEOFF_DPI = 190  # the trade-off plots are shown ~380 px wide: 2x resolution keeps them sharp
MAX_LAYERS = 80  # beyond this a chart is unreadable: unchanged layers are dropped first
PALETTE = ("#2f6db5", "#d1495b", "#3a9d5d", "#e39b2d", "#7a4fb3", "#1b9aaa", "#8c564b", "#e377c2")
BEFORE_COLOUR = "#b9c0ca"
LABEL_LIMIT = 12  # points named on a plot; more would overlap into noise


@dataclass
class Series:
    """Points of one run on a trade-off plot, in one colour, with their own Pareto front."""

    label: str
    points: Sequence[Point]
    colour: str


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def to_data_uri(fig: Figure) -> str:
    """Render ``fig`` to PNG and wrap it as a ``data:image/png;base64,...`` URI (no files, no network)."""
    canvas = FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    canvas.print_png(buffer, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _cost_formatter(unit: str) -> object:
    if unit == "bytes":
        return EngFormatter(unit="B", places=None, sep=" ")
    if unit == "ms":
        return FuncFormatter(lambda v, _: f"{v:g} ms")
    return EngFormatter(places=None, sep=" ")


def _value(point: Point, key: str) -> float | None:
    value = getattr(point, key)
    return float(value) if value is not None else None


def tradeoff_chart(
    series: Sequence[Series], cost: str, axis_label: str, unit: str, score_label: str = "accuracy"
) -> str | None:
    """:func:`tradeoff_figure` as a PNG data URI; None when no point has both accuracy and ``cost``."""
    fig = tradeoff_figure(series, cost, axis_label, unit, score_label)
    return to_data_uri(fig) if fig is not None else None


def tradeoff_figure(
    series: Sequence[Series], cost: str, axis_label: str, unit: str, score_label: str = "accuracy"
) -> Figure | None:
    """Accuracy against ``cost`` for every point, each series' front connected; None if nothing to draw.
    ``score_label`` names the y axis: a dense task's models are scored by mAP@[.5:.95] or mIoU."""
    drawable = []
    for s in series:
        pts = [p for p in s.points if _value(p, cost) is not None and p.accuracy is not None]
        if pts:
            drawable.append((s, pts))
    if not drawable:
        return None
    # About 4 inches wide at 2x resolution: the page shows it ~380 px wide, so 8 pt text reads as ~11 px.
    fig = Figure(figsize=(4.2, 3.3), dpi=TRADEOFF_DPI)
    # Fixed margins (constrained layout doubles the drawing time); the right one leaves room for a log
    # axis's last tick label, which is centred on the edge.
    fig.subplots_adjust(left=0.15, right=0.94, bottom=0.14, top=0.92)
    ax = fig.add_subplot()
    single = len(drawable) == 1
    for s, pts in drawable:
        _draw_series(ax, s.colour, pts, cost)
    costs = [c for _, pts in drawable for p in pts if (c := _value(p, cost) or 0.0) > 0]
    if costs and max(costs) / min(costs) > 30:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.xaxis.set_major_formatter(_cost_formatter(unit))
    accs = [p.accuracy for _, pts in drawable for p in pts]
    decimals = 1 if max(accs) - min(accs) < 0.05 else 0  # whole percents unless the spread is small
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=decimals))
    ax.tick_params(labelsize=7.5)
    ax.margins(x=0.14, y=0.16)
    ax.set_xlabel(axis_label, fontsize=8.5)
    ax.set_ylabel(score_label, fontsize=8.5)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{score_label} vs {short_name(axis_label)}", fontsize=9.5)
    if single and len(drawable[0][1]) <= LABEL_LIMIT:
        _label_points(ax, drawable[0][1], cost)
    ax.legend(handles=_legend(drawable, single), fontsize=7, loc="best", framealpha=0.85)
    return fig


def short_name(axis_label: str) -> str:
    """``"latency, batch 1 (ms)"`` -> ``"latency"``: the cost's name without its conditions."""
    return axis_label.split(",")[0].split(" (")[0]


def _draw_series(ax: Axes, tint: str, pts: Sequence[Point], cost: str) -> None:
    xs = [_value(p, cost) for p in pts]
    ax.scatter(xs, [p.accuracy for p in pts], s=22, color=tint, alpha=0.75, zorder=3)
    front = pareto_front(pts, cost)
    if len(front) > 1:
        ax.plot([_value(p, cost) for p in front], [p.accuracy for p in front], color=tint, lw=1.5, zorder=2)
    for x, p in zip(xs, pts):
        y = p.accuracy
        if p.on_search_front:
            ax.scatter([x], [y], s=70, facecolors="none", edgecolors="black", linewidths=0.9, zorder=4)
        if p.role == "baseline":
            ax.scatter([x], [y], s=55, marker="s", color=tint, edgecolors="black", lw=0.7, zorder=5)
        elif p.role == "final":
            ax.scatter([x], [y], s=150, marker="*", color=tint, edgecolors="black", lw=0.7, zorder=5)


def _label_points(ax: Axes, pts: Sequence[Point], cost: str) -> None:
    """Name each point; points at one spot (a fine-tune keeps the pruned shape) share a label.

    Runs after the axes limits are final, so a label in the right part of the plot can be put on the
    left of its point instead of running off the figure.
    """
    names: dict[tuple[float, float], list[str]] = {}
    for p in pts:
        names.setdefault((_value(p, cost), p.accuracy), []).append(p.name)
    to_axes = ax.transData + ax.transAxes.inverted()
    for (x, y), group in names.items():
        right_side = to_axes.transform((x, y))[0] > 0.6
        ax.annotate(", ".join(group), (x, y), xytext=(-6 if right_side else 6, 5), textcoords="offset points",
                    ha="right" if right_side else "left", fontsize=7, color="#333")  # fmt: skip


def _legend(drawable: Sequence[tuple[Series, Sequence[Point]]], single: bool) -> list[Line2D]:
    first = drawable[0][0].colour if single else "#555555"
    handles = []
    if not single:
        handles += [Line2D([], [], color=s.colour, marker="o", lw=1.6, label=s.label) for s, _ in drawable]
    else:
        handles.append(Line2D([], [], color=first, marker="o", lw=0, label="evaluated model"))
        handles.append(Line2D([], [], color=first, lw=1.6, label="Pareto front"))
    roles = {p.role for _, pts in drawable for p in pts}
    if "baseline" in roles:
        handles.append(
            Line2D([], [], color=first, marker="s", lw=0, markeredgecolor="black", label="baseline")
        )
    if "final" in roles:
        handles.append(
            Line2D(
                [],
                [],
                color=first,
                marker="*",
                markersize=11,
                lw=0,
                markeredgecolor="black",
                label="final model",
            )
        )
    if any(p.on_search_front for _, pts in drawable for p in pts):
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                markersize=9,
                lw=0,
                markerfacecolor="none",
                markeredgecolor="black",
                label="search's Pareto set",
            )
        )
    return handles


def select_layers(widths: Sequence[LayerWidth], limit: int = MAX_LAYERS) -> tuple[list[LayerWidth], int]:
    """At most ``limit`` layers, changed ones first kept, in model order; also how many were left out."""
    rows = list(widths)
    if len(rows) <= limit:
        return rows, 0
    changed = [w for w in rows if w.before != w.after]
    keep = {id(w) for w in changed[:limit]}
    for w in rows:
        if len(keep) >= limit:
            break
        keep.add(id(w))
    chosen = [w for w in rows if id(w) in keep]
    return chosen, len(rows) - len(chosen)


def widths_chart(widths: Sequence[LayerWidth]) -> str | None:
    """Grouped horizontal bars: each layer's width before (grey) and after (blue), labelled with both.

    Widths of one network span 1 to thousands (a 3-channel conv beside a 4096-feature linear layer), so
    a spread over 20x switches to a log axis: on a linear one the narrow layers' bars would vanish.
    """
    rows, _ = select_layers(widths)
    if not rows:
        return None
    n = len(rows)
    height = 1.2 + 0.34 * n
    fig = Figure(figsize=(7.6, height), dpi=WIDTHS_DPI)
    name_inches = 0.2 + 0.058 * max(len(w.name) for w in rows)  # 8 pt tick labels: ~0.058 in per character
    fig.subplots_adjust(
        left=min(name_inches / 7.6, 0.5), right=0.98, bottom=0.62 / height, top=1 - 0.45 / height
    )
    ax = fig.add_subplot()
    ys = list(range(n))[::-1]  # first layer on top, as in the model
    before = [w.before or 0 for w in rows]
    after = [w.after or 0 for w in rows]
    widest = max([*before, *after, 1])
    narrowest = min([v for v in (*before, *after) if v > 0], default=1)
    log = widest / narrowest > 20
    base = 0.5 if log else 0.0  # log bars start just below 1 so a 1-channel layer still shows
    bars = ((0.19, before, BEFORE_COLOUR, "before"), (-0.19, after, PALETTE[0], "after"))
    for offset, values, tint, label in bars:
        lengths = [max(v - base, 0) for v in values]
        ax.barh([y + offset for y in ys], lengths, left=base, height=0.38, color=tint, label=label)
    for y, w in zip(ys, rows):
        right = max(w.before or 0, w.after or 0, 1)
        x = right * 1.12 if log else right + widest * 0.012
        ax.text(x, y, _width_label(w), va="center", fontsize=7.5, color="#333333")
    if log:
        ax.set_xscale("log")
        ax.set_xlim(base, widest * 12)  # room for the labels right of the widest bar
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    else:
        ax.set_xlim(0, widest * 1.32)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_yticks(ys, [w.name for w in rows], fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    scale = " (log scale)" if log else ""
    ax.set_xlabel(f"output channels (conv) / output features (linear){scale}", fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, fontsize=8, frameon=False)
    ax.set_title("layer widths before and after", fontsize=10, loc="left")
    return to_data_uri(fig)


def _width_label(w: LayerWidth) -> str:
    if w.before is None or w.after is None:
        return f"{w.before if w.before is not None else '?'} \u2192 {w.after if w.after is not None else '?'}"
    share = f" ({w.after / w.before:.0%})" if w.before else ""
    return f"{w.before} \u2192 {w.after}{share}"
