"""netsculpt.json is validated completely, with limits, before anything is built or allocated."""

from __future__ import annotations

import json
import time

import pytest
import torch

import netsculpt as ns
from netsculpt.errors import CheckpointError


@pytest.fixture
def saved(tmp_path):
    folder = tmp_path / "m"
    ns.save(ns.prune(ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28), ratio=0.5), folder)
    return folder


def _rewrite(folder, change) -> None:
    data = json.loads((folder / "netsculpt.json").read_text())
    change(data)
    (folder / "netsculpt.json").write_text(json.dumps(data))


def _refused(folder, pattern: str) -> None:
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=pattern):
        ns.load(folder)
    assert time.perf_counter() - started < 30  # refused before any large allocation or long replay


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (
            lambda d: d["edits"][0].update(input_shapes=[[100000, 3, 1000, 1000]]),
            r"edits\[0\]\.input_shapes\[0\]",
        ),
        (
            lambda d: d["edits"][0].update(input_shapes=[[1, -3, 28, 28]]),
            r"edits\[0\]\.input_shapes\[0\]\[1\]",
        ),
        (lambda d: d["base"].update(num_classes=10**9), r"base\.num_classes"),
        (lambda d: d["base"].update(num_classes=True), r"base\.num_classes"),
        (lambda d: d["base"]["kwargs"].update(checkpoint="/etc/passwd"), r"base\.kwargs"),
        (lambda d: d.update(edits=d["edits"] * 300), "more than the limit of 256"),
        (
            lambda d: d["edits"].append({"kind": "exec", "code": "print(1)"}),
            r"unknown edit kind 'exec'.*Registered",
        ),
        (lambda d: d["edits"][0]["plan"]["keep"].update({"conv1": [0, 0]}), r"plan\.keep\[.conv1.\]"),
        (lambda d: d["edits"][0]["plan"]["sizes"].update({"conv1": 2}), r"distinct indices below"),
        (lambda d: d["edits"][0].update(extra_field=1), r"edits\[0\]: Additional properties"),
        (lambda d: d.update(version=99), "newer netsculpt.*upgrade"),
        (lambda d: d.update(base_shapes=[1, 2]), "base_shapes"),
        (lambda d: d["extra"].update(input_shape=[1, 10**6, 10**6]), r"extra\.input_shape"),
        (lambda d: d.update(base={"kind": "pickle", "data": "gASV"}), "base.kind must be one of"),
        (lambda d: d["base"].update(kind={"a": 1}), "base.kind must be one of"),  # found by the fuzzer
    ],
)
def test_hostile_fields_are_named(saved, change, pattern) -> None:
    _rewrite(saved, change)
    _refused(saved, pattern)


def test_json_that_python_accepts_but_a_spec_must_not(saved) -> None:
    text = (saved / "netsculpt.json").read_text()
    (saved / "netsculpt.json").write_text(text.replace('"in_channels": 1', '"in_channels": NaN'))
    _refused(saved, "not a number JSON allows")
    (saved / "netsculpt.json").write_text('{"format": "netsculpt-model", "format": "x"}')
    _refused(saved, "duplicate key 'format'")
    (saved / "netsculpt.json").write_text("[" * 100_000 + "]" * 100_000)
    _refused(saved, "nested too deeply|not valid JSON")
    (saved / "netsculpt.json").write_bytes(b" " * (17 * 1024 * 1024))
    _refused(saved, "netsculpt reads at most")


def test_an_enormous_base_is_refused_on_the_meta_device(saved) -> None:
    """A file asking for a ResNet with a million-wide groups: sized on meta (no memory), then refused."""
    base = {"kind": "netsculpt", "name": "torchvision:resnet50", "kwargs": {"width_per_group": 1_000_000}}
    _rewrite(saved, lambda d: d.update(base=base, base_shapes=None, edits=[]))
    _refused(saved, "would hold .* values; the limit is")


def test_factorisation_ranks_beyond_the_layer_are_refused(tmp_path) -> None:
    from netsculpt.weights.lowrank import LowRankConfig, factorize_

    model = ns.create_model("lenet5")
    factorize_(model, LowRankConfig(energy=0.5))
    ns.save(model, tmp_path)
    _rewrite(tmp_path, lambda d: d["edits"][0]["layers"][0].update(ranks=[1 << 19]))
    _refused(tmp_path, "ranks must be within")


def test_weights_whose_shapes_lie_are_refused_before_reading(saved) -> None:
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in ns.load(saved).state_dict().items()}
    state["fc2.weight"] = torch.zeros(10, 7)
    save_file(state, str(saved / "model.safetensors"))
    _refused(saved, r"'fc2\.weight' has shape \[10, 7\]")
    del state["fc2.weight"]
    save_file(state, str(saved / "model.safetensors"))
    _refused(saved, r"lacks 'fc2\.weight'")
