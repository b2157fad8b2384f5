"""A rich table of one model's metrics, or of a model before and after compression."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table

from netsculpt.measure.metrics import Metrics


def human_count(value: float) -> str:
    """``25557032`` -> ``25.56 M``: counts read at a glance, with three significant figures or more."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {suffix}"
    return f"{value:.0f}"


def human_bytes(value: float) -> str:
    """Binary units, as file managers and ``du -h`` show sizes."""
    for factor, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {suffix}"
    return f"{value:.0f} B"


def human_ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"


def _counted_at(before: Metrics, after: Metrics | None) -> str:
    """Which batch the per-forward counts (MACs, peak activations) are for, said the way latency rows
    say theirs: MACs of a batch of 8 beside a batch-1 latency read as 8x the cost otherwise."""
    sizes = {m.batch_size for m in (before, after) if m is not None}
    if sizes == {None}:
        return " (example as given)"  # structured inputs: no dim 0 netsculpt can call the batch
    if len(sizes) == 1:
        return f", batch {sizes.pop()}"
    return ", batch " + " / ".join(str(m.batch_size or "?") for m in (before, after) if m is not None)


def _rows(before: Metrics, after: Metrics | None) -> list[tuple[str, float | None, float | None, Callable]]:
    at = _counted_at(before, after)
    rows: list[tuple[str, float | None, float | None, Callable]] = [
        ("Parameters", before.params, after and after.params, human_count),
        (f"MACs{at}", before.macs, after and after.macs, human_count),
        (
            f"Peak activations{at}",
            before.peak_activation_bytes,
            after and after.peak_activation_bytes,
            human_bytes,
        ),
        ("Size (safetensors)", before.size_bytes, after and after.size_bytes, human_bytes),
    ]
    runtimes = list(before.latency) + [
        rt for rt in (after.latency if after else {}) if rt not in before.latency
    ]
    for runtime in runtimes:
        by_batch = before.latency.get(runtime, {})
        after_batch = after.latency.get(runtime, {}) if after else {}
        for batch in sorted({*by_batch, *after_batch}):
            label = f"Latency {runtime}, batch {batch}"
            rows.append((label, by_batch.get(batch), after_batch.get(batch) if after else None, human_ms))
    return rows


def format_metrics_table(before: Metrics, after: Metrics | None = None) -> Table:
    """Params, MACs, peak activations, size and each latency; with ``after``, also the after/before ratio.

    The ratio is after divided by before (0.50x means halved), the same direction for every row.
    The CPU calibration of each measurement goes in the caption so timings can be judged.
    """
    table = Table(title="Model metrics" if after is None else "Before and after")
    table.add_column("Metric")
    table.add_column("Before" if after is not None else "Value", justify="right")
    if after is not None:
        table.add_column("After", justify="right")
        table.add_column("Ratio", justify="right")
    for label, old, new, fmt in _rows(before, after):
        cells = [label, fmt(old) if old is not None else "-"]
        if after is not None:
            ratio = f"{new / old:.2f}x" if new is not None and old else "-"
            cells += [fmt(new) if new is not None else "-", ratio]
        table.add_row(*cells)
    padding = ["", ""] if after is not None else []
    for tag, metrics in (("before", before), ("after", after)):
        for runtime, reason in metrics.unavailable.items() if metrics is not None else ():
            prefix = f"{tag}: " if after is not None else ""
            table.add_row(f"Latency {runtime}", f"{prefix}not measured: {reason}", *padding)
    captions = []
    for tag, metrics in (("before", before), ("after", after)):
        if metrics is not None and metrics.calibration is not None:
            prefix = f"{tag}: " if after is not None else ""
            captions.append(f"{prefix}{metrics.calibration}, torch threads {metrics.threads}")
    if captions:
        table.caption = "\n".join(captions)
    return table
