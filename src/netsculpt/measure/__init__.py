"""Measure a model: parameters, MACs, peak activation memory, size on disk and latency.

The baseline and the final step of every netsculpt run: the same conventions before and after
compression, so ratios in a report mean what they say. Conventions are written down in docs/measure.md.
"""

from __future__ import annotations

from netsculpt.measure.calibration import Calibration, cpu_calibration
from netsculpt.measure.latency import measure_latency
from netsculpt.measure.latency_model import LatencyModel
from netsculpt.measure.macs import LayerMetrics, count_macs, count_params
from netsculpt.measure.memory import peak_activation_bytes
from netsculpt.measure.metrics import Metrics, measure
from netsculpt.measure.onnx_runtime import export_onnx, onnx_latency, run_onnx
from netsculpt.measure.size import serialized_size_bytes
from netsculpt.measure.table import format_metrics_table

__all__ = [
    "Calibration",
    "LatencyModel",
    "LayerMetrics",
    "Metrics",
    "count_macs",
    "count_params",
    "cpu_calibration",
    "export_onnx",
    "format_metrics_table",
    "measure",
    "measure_latency",
    "onnx_latency",
    "peak_activation_bytes",
    "run_onnx",
    "serialized_size_bytes",
]
