"""A recipe's `cluster: {bits: auto, budget_bytes: N}` stage: mixed bits within N bytes, in results."""

from __future__ import annotations

import pytest

from netsculpt.errors import ConfigError
from netsculpt.pipeline import parse_recipe, run_recipe
from tests.pipeline.test_runner import SMALL


@pytest.mark.slow
def test_cluster_bits_auto_stage_fits_the_budget(tmp_path) -> None:
    # the pruned LeNet keeps ~54k weights: 3 bits each is ~20 kB of indices, so 16 kB needs mixed bits
    stage = "  - cluster: {method: kmeans, bits: auto, budget_bytes: 16000}\n"
    text = SMALL.replace("  - finetune: {epochs: 1}\n", stage)
    results = run_recipe(parse_recipe(text), text, tmp_path)
    saved = (tmp_path / "02_cluster" / "model" / "model.safetensors").stat().st_size
    assert saved <= 16000 and results["after"]["size_bytes"] == saved
    info = results["stages"][2]["info"]
    assert info["bits"] == "auto" and info["bytes"] == saved
    assert set(info["layer_bits"]) == {"conv1", "conv2", "fc1", "fc2"}
    assert all(1 <= b <= 8 for b in info["layer_bits"].values())


def test_bits_auto_needs_a_budget(tmp_path) -> None:
    text = SMALL.replace("  - finetune: {epochs: 1}\n", "  - cluster: {method: kmeans, bits: auto}\n")
    with pytest.raises(ConfigError, match="budget_bytes"):
        run_recipe(parse_recipe(text), text, tmp_path)
