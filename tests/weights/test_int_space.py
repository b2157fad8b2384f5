"""int4 / int8 per layer under a byte budget: exact weight bytes, the budget met, the export reloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netsculpt.errors import ConfigError, PruningError
from netsculpt.search.evaluator import take_batches
from netsculpt.train import evaluate
from netsculpt.weights.haq import BitSearchConfig, search_bits
from netsculpt.weights.int_space import (
    IntSpace,
    export_int_bits,
    fake_quantize,
    int4_layers,
    onnx_weight_bytes,
)
from netsculpt.weights.quantize import OnnxModule
from tests.search import _tiny


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    train, val = _tiny.loaders()
    return _tiny.trained_model(), train, val


def test_predicted_bytes_match_the_packed_onnx_tensors(trained, tmp_path: Path) -> None:
    model, train, _ = trained
    space = IntSpace(model)
    assert space.names == ["conv1", "conv2", "conv3", "fc"]
    for k, bits in enumerate(([4, 8, 4, 4], [8, 8, 8, 8], [4, 4, 4, 4])):
        chosen = space.layer_bits(bits)
        exported = export_int_bits(model, chosen, _tiny.example(), train, tmp_path / str(k))
        actual = onnx_weight_bytes(exported.path, model)
        assert actual == {layer.name: layer.nbytes(chosen[layer.name]) for layer in space.layers}
        assert sum(actual.values()) == space.nbytes(bits)
    # int4 halves the weight bytes (conv3: 16*16*9 weights -> 1152 bytes, plus 16 scales and zero points)
    assert space.layers[2].nbytes(4) == 1152 + 16 * 4 + 8
    assert space.layers[2].nbytes(8) == 2304 + 16 * 4 + 16


def test_fake_quantize_rounds_per_output_channel() -> None:
    weight = torch.randn(6, 3, 3, 3)
    weight[2] *= 100  # a large channel must not coarsen the others' grid
    for bits in (4, 8):
        q = fake_quantize(weight, bits)
        qmax = 2 ** (bits - 1) - 1
        step = weight.reshape(6, -1).abs().amax(1) / qmax
        err = (q - weight).reshape(6, -1).abs().amax(1)
        assert torch.all(err <= step / 2 + 1e-6)
        assert all(len(torch.unique(q[c])) <= 2 * qmax + 1 for c in range(6))


@pytest.mark.parametrize("method", ["agent", "genetic", "nsga2"])
def test_search_meets_the_budget_and_the_export_reloads(trained, tmp_path: Path, method) -> None:
    model, train, val = trained
    space = IntSpace(model)
    low, high = space.nbytes([4] * 4), space.nbytes([8] * 4)
    budget = (low + high) // 2
    search = BitSearchConfig(method=method, episodes=6, warmup=2, pop_size=4, generations=2, seed=0)
    search.agent.batch_size = 4
    result = search_bits(space, budget, take_batches(val, 4, "held-out"), search)
    assert result.predicted_bytes <= budget
    assert set(result.bits.values()) <= {4, 8}
    assert result.history["uniform"] == {"4": low, "8": high}
    exported = export_int_bits(model, result.bits, _tiny.example(), train, tmp_path)
    assert sum(onnx_weight_bytes(exported.path, model).values()) == result.predicted_bytes
    reloaded = OnnxModule(exported.path)
    accuracy, _ = evaluate(reloaded, take_batches(val, 4, "held-out"))
    assert accuracy > 1 / _tiny.CLASSES
    for name in space.names:  # the model is left as it was: float weights back in place
        assert torch.equal(dict(model.named_modules())[name].weight, space._original[name])


def test_impossible_budget_names_the_smallest_size(trained) -> None:
    model, _, val = trained
    space = IntSpace(model)
    smallest = space.nbytes([4] * 4)
    with pytest.raises(
        PruningError, match=f"can never be met: the smallest reachable size is {smallest} bytes"
    ):
        search_bits(
            space, smallest - 1, take_batches(val, 2, "held-out"), BitSearchConfig(episodes=2, warmup=1)
        )


def test_only_int4_and_int8_widths_export() -> None:
    assert int4_layers({"a": 4, "b": 8, "c": 4}) == ("a", "c")
    with pytest.raises(ConfigError, match="must be 4 or 8"):
        int4_layers({"a": 3})
