"""A real, tiny recipe run (LeNet-5 on 200 digits: baseline, prune, int8) for the bench and report tests."""

from __future__ import annotations

from pathlib import Path

from netsculpt.pipeline import parse_recipe, run_recipe

TINY = """
name: tiny
model: {name: lenet5}
data: {name: mnist5k, limit: 200}
baseline: {train: {preset: default, epochs: 1}}
stages:
  - prune: {criterion: l1, widths: {conv1: 4, conv2: 6}}
  - quantize: {calib_batches: 2}
outputs: {latency_runs: 2, report: true}
"""


def tiny_run(folder: Path, text: str = TINY) -> Path:
    run_recipe(parse_recipe(text), text, folder)
    return folder
