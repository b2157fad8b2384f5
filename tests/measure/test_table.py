"""The before/after table later stages print."""

from __future__ import annotations

from rich.console import Console

from netsculpt.measure import Calibration, Metrics, format_metrics_table
from netsculpt.measure.table import human_bytes, human_count


def render(table: object) -> str:
    console = Console(width=150, record=True)
    console.print(table)
    return console.export_text()


def make(params: int, macs: int, torch_ms: float) -> Metrics:
    return Metrics(
        params=params,
        macs=macs,
        peak_activation_bytes=3 * 2**20,
        size_bytes=params * 4,
        latency_ms=torch_ms,
        latency={"torch": {1: torch_ms, 8: 4 * torch_ms}},
        layers=[],
        calibration=Calibration(matmul_gflops=80.0, python_loop_ms=20.0),
        threads=2,
        batch_size=1,
    )


def test_before_after_ratios() -> None:
    text = render(
        format_metrics_table(make(25_557_032, 4_089_184_256, 40.0), make(12_778_516, 1_022_296_064, 10.0))
    )
    assert "25.56 M" in text and "12.78 M" in text
    assert "4.09 G" in text and "0.25x" in text  # MACs quartered
    assert "0.50x" in text  # params halved
    assert "Latency torch, batch 8" in text and "160.00 ms" in text
    assert "80.0 GFLOP/s" in text and "torch threads 2" in text


def test_single_model_has_no_ratio_column() -> None:
    text = render(format_metrics_table(make(1000, 2000, 0.5)))
    assert "Ratio" not in text and "Value" in text and "0.500 ms" in text


def test_human_units() -> None:
    assert human_count(999) == "999" and human_count(1500) == "1.50 k" and human_count(4.09e9) == "4.09 G"
    assert human_bytes(512) == "512 B" and human_bytes(3 * 2**20) == "3.00 MiB"


def test_counts_say_which_batch_they_are_for() -> None:
    # MACs of a batch-8 example beside batch-1 latency, unlabelled, read as 8x the cost of one image
    before, after = make(1000, 8000, 0.5), make(500, 4000, 0.3)
    before.batch_size = after.batch_size = 8
    text = render(format_metrics_table(before, after))
    assert "MACs, batch 8" in text and "Peak activations, batch 8" in text
    assert "Latency torch, batch 1" in text
    after.batch_size = 1
    assert "MACs, batch 8 / 1" in render(format_metrics_table(before, after))
    before.batch_size = None  # structured inputs: no dim 0 to call the batch
    assert "MACs (example as given)" in render(format_metrics_table(before))
