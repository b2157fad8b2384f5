"""PNG plots of a search's history: sensitivity curves, greedy trajectory, GA progress, Pareto front.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend switch), so
plotting works headless and never disturbs a caller's own matplotlib state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from netsculpt.fileio import atomic_write


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))


def plot_sensitivity(history: dict[str, Any], path: Path) -> Path:
    """One accuracy-vs-ratio curve per group, with the unpruned accuracy as a dashed line."""
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    for gid, curve in history["curves"].items():
        ratios = [0.0] + [p["ratio"] for p in curve]
        accuracy = [history["base"]["accuracy"]] + [p["accuracy"] for p in curve]
        ax.plot(ratios, accuracy, marker=".", label=gid)
    ax.axhline(history["base"]["accuracy"], color="black", linestyle="--", linewidth=0.8, label="unpruned")
    ax.set_xlabel("fraction of the group's channels removed (others untouched)")
    ax.set_ylabel("held-out accuracy, no fine-tuning")
    ax.set_title("Sensitivity of each channel group")
    ax.legend(fontsize=6, ncol=2 if len(history["curves"]) > 12 else 1, loc="lower left")
    return _save(fig, path)


def plot_trajectory(history: dict[str, Any], path: Path, targets: list[float]) -> Path:
    """Greedy slimming: held-out accuracy against cost, step by step."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    cost = history["cost"]
    points = history["trajectory"]
    ax.plot([p["cost"][cost] for p in points], [p["accuracy"] for p in points], marker=".")
    for t in targets:
        ax.axvline(t, color="grey", linestyle=":", linewidth=0.8)
    ax.invert_xaxis()
    ax.set_xlabel(f"{cost} (fraction of the original)")
    ax.set_ylabel("held-out accuracy (few batches)")
    ax.set_title("Greedy slimming trajectory")
    return _save(fig, path)


def plot_generations(history: dict[str, Any], path: Path) -> Path:
    """Genetic search: best and mean fitness per generation."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    gens = history["generations"]
    ax.plot([g["generation"] for g in gens], [g["best"] for g in gens], marker=".", label="best")
    ax.plot([g["generation"] for g in gens], [g["mean"] for g in gens], marker=".", label="population mean")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"held-out {history['metric']}" + (" (error)" if history["metric"] == "accuracy" else ""))
    ax.set_title(f"Genetic search under {history['cost']} <= {history['budget']:g}")
    ax.legend()
    return _save(fig, path)


def plot_front(history: dict[str, Any], path: Path, targets: list[float]) -> Path:
    """NSGA-II: every scored candidate, and the Pareto front."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    cost = history["cost"]
    ev = history["evaluated"]
    ax.scatter(
        [p["cost"] for p in ev], [p["value"] for p in ev], s=8, color="lightgrey", label="scored (cheap)"
    )
    front = history["front"]
    ax.plot([p["cost"][cost] for p in front], [p["value"] for p in front], marker="o", color="tab:red",
            label="Pareto front (fuller score)")  # fmt: skip
    for t in targets:
        ax.axvline(t, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel(f"{cost} (fraction of the original)")
    ax.set_ylabel(f"held-out {history['metric']}" + (" (error)" if history["metric"] == "accuracy" else ""))
    ax.set_title("NSGA-II Pareto front")
    ax.legend()
    return _save(fig, path)


def plot_history(method: str, history: dict[str, Any], out_dir: Path, targets: list[float]) -> list[Path]:
    """The plots that fit ``method``'s history, written into ``out_dir``."""
    if method == "sensitivity":
        return [plot_sensitivity(history, out_dir / "sensitivity.png")]
    if method == "greedy":
        return [plot_trajectory(history, out_dir / "trajectory.png", targets)]
    if method == "genetic":
        return [plot_generations(history, out_dir / "generations.png")]
    if method == "nsga2":
        return [plot_front(history, out_dir / "front.png", targets)]
    return []
