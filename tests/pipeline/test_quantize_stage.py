"""The quantize stage's settings are checked before any work: a `runtime: auto` stage on a training split too
small for its calibration and held-out batches, and `options` a runtime does not take."""

from __future__ import annotations

import pytest

from netsculpt.errors import ConfigError
from netsculpt.pipeline import parse_recipe, run_recipe

# digits limited to 50 images per split in batches of 16: 4 training batches, fewer than the 8 the
# quantize stage calibrates on by default, so nothing would be left to score the candidates on
SMALL = """
name: small_auto
model: {name: lenet5, options: {input_size: 16}}
data: {name: digits, resize: 16, limit: 50, batch_size: 16}
baseline: {train: {preset: default, epochs: 1}}
stages:
  - quantize: {runtime: auto%s}
outputs: {latency_runs: 1, report: false}
"""


def test_auto_quantize_without_held_out_batches_is_refused_before_the_baseline(tmp_path) -> None:
    text = SMALL % ""
    with pytest.raises(ConfigError, match=r"stages\.0\.quantize: .*calib_batches=8 .* gives 4 batch\(es\) .*"
                       r"--set stages\.0\.quantize\.calib_batches=2"):  # fmt: skip
        run_recipe(parse_recipe(text), text, tmp_path)
    assert not (tmp_path / "00_baseline").exists()  # refused before any work (it failed after every stage)


def test_quantize_options_on_a_runtime_that_takes_none_are_refused_when_read() -> None:
    for runtime in ("auto", "openvino", "torch"):  # auto had ignored them silently
        match = rf"stages\.0\.quantize: .*options \(method\) .* runtime {runtime}"
        with pytest.raises(ConfigError, match=match):
            parse_recipe(f"stages:\n  - quantize: {{runtime: {runtime}, options: {{method: entropy}}}}\n")
    parse_recipe("stages:\n  - quantize: {runtime: onnxruntime, options: {method: entropy}}\n")
