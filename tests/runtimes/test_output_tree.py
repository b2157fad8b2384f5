"""The JSON form of a model's output structure: round trips, refusals, and strict reading of the file."""

from __future__ import annotations

import json
from collections import OrderedDict, namedtuple

import pytest
import torch

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.runtimes.output_tree import (
    OUTPUTS_NAME,
    OutputTree,
    graph_outputs,
    read_outputs,
    write_outputs,
)


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))


NESTED = [
    torch.ones(2),
    (torch.ones(1), torch.zeros(3)),
    {"logits": torch.ones(2, 10), "boxes": torch.zeros(2, 4)},
    {"b": [torch.ones(1), (torch.zeros(1),)], "a": {"inner": torch.full((1,), 2.0)}, "c": ()},
    [torch.ones(1)],
    OrderedDict(out=torch.ones(1, 3), aux=(torch.zeros(2),)),  # torchvision segmenters return OrderedDict
]


@pytest.mark.parametrize("output", NESTED)
def test_structure_round_trips_through_its_json_file(output, tmp_path) -> None:
    from torch.utils._pytree import tree_flatten

    tree = OutputTree.of(output, "Net")
    write_outputs(tmp_path, tree)
    again = read_outputs(tmp_path)
    if isinstance(output, torch.Tensor):  # a bare tensor needs no file: a folder without one means that
        assert again is None and not (tmp_path / OUTPUTS_NAME).exists()
        return
    assert again == tree
    rebuilt = again.rebuild(tree_flatten(output)[0])  # the graph's outputs come in tree_flatten's order
    assert _same(rebuilt, output)  # dict key order kept too


def test_a_stale_file_goes_when_the_new_model_returns_one_tensor(tmp_path) -> None:
    write_outputs(tmp_path, OutputTree.of((torch.ones(1), torch.ones(1)), "Net"))
    write_outputs(tmp_path, OutputTree.of(torch.ones(1), "Net"))
    assert read_outputs(tmp_path) is None


OUT = namedtuple("Out", "a b")


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (OUT(torch.ones(1), torch.ones(1)), r"returns a namedtuple \(Out\); .* plain tuple"),
        ({1: torch.ones(1)}, "returns a dict with non-str keys"),
        (OrderedDict([(1, torch.ones(1))]), "returns a dict with non-str keys"),
        ((torch.ones(1), None), r"returns None \(None\) at output\[1\] among its outputs"),
        ({"n": 3, "t": torch.ones(1)}, r"returns an int \(3\) at output\['n'\] among its outputs"),
    ],
)
def test_structures_an_artefact_cannot_rebuild_are_refused_naming_the_model(output, match) -> None:
    with pytest.raises(ConfigError, match=f"^Detector {match}"):
        OutputTree.of(output, "Detector")


def test_a_non_tensor_output_is_named_with_its_place_and_what_to_do() -> None:
    """It read "returns a int among its outputs" and did not say which value or how to fix it."""
    with pytest.raises(ConfigError) as info:
        OutputTree.of({"boxes": torch.ones(1), "meta": [torch.ones(1), 0.5]}, "Detector")
    message = str(info.value)
    assert message.startswith("Detector returns a float (0.5) at output['meta'][1] among its outputs;")
    assert "a int" not in message and "an float" not in message
    assert "turn it into a tensor (torch.as_tensor)" in message and "runtime 'torch'" in message
    with pytest.raises(ConfigError, match=r"^Net returns an int \(7\) among its outputs"):
        OutputTree.of(7, "Net")  # the whole output: no place to name


GOOD = {"format": "netsculpt-output-tree", "version": 1, "leaves": 1, "tree": {"kind": "tensor"}}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "it is not JSON"),
        (json.dumps([1, 2]), "it is not a netsculpt-output-tree version 1 object"),
        (json.dumps({**GOOD, "version": 2}), "version 1 object"),
        (json.dumps({**GOOD, "extra": 1}), r"unexpected fields \['extra'\]"),
        (json.dumps({**GOOD, "leaves": 2}), "'leaves' says 2 but the tree holds 1 tensors"),
        (json.dumps({**GOOD, "leaves": True}), "'leaves' says True"),
        (json.dumps({**GOOD, "tree": {"kind": "set", "items": []}}), "not a tensor / tuple / list / dict"),
        (json.dumps({**GOOD, "tree": {"kind": "tuple", "items": {}}}), "items are not a list"),
        (json.dumps({**GOOD, "tree": {"kind": "tensor", "items": []}}), "a tensor node has fields"),
        (
            json.dumps({**GOOD, "tree": {"kind": "dict", "keys": [1], "items": [{"kind": "tensor"}]}}),
            "keys are not a list of strings",
        ),
        (
            json.dumps(
                {
                    **GOOD,
                    "leaves": 2,
                    "tree": {
                        "kind": "dict",
                        "keys": ["a", "a"],
                        "items": [{"kind": "tensor"}, {"kind": "tensor"}],
                    },
                }
            ),
            "keys are repeated",
        ),
        (json.dumps({**GOOD, "tree": {"kind": "list", "items": [{"kind": "tensor"}]} | {"x": 1}}), "fields"),
    ],
)
def test_a_malformed_file_is_a_checkpoint_error_saying_what_to_do(text, why, tmp_path) -> None:
    (tmp_path / OUTPUTS_NAME).write_text(text)
    with pytest.raises(CheckpointError, match=why) as err:
        read_outputs(tmp_path)
    assert "Rerun the quantize stage" in str(err.value) and OUTPUTS_NAME in str(err.value)


def test_a_deeply_nested_file_is_refused(tmp_path) -> None:
    node: dict = {"kind": "tensor"}
    for _ in range(200):  # deeper than any real output, shallow enough for json.loads itself
        node = {"kind": "list", "items": [node]}
    (tmp_path / OUTPUTS_NAME).write_text(json.dumps({**GOOD, "tree": node}))
    with pytest.raises(CheckpointError, match="nested deeper than 64 levels"):
        read_outputs(tmp_path)


def test_a_structure_from_another_graph_is_refused() -> None:
    tree = OutputTree.of((torch.ones(1), torch.ones(1)), "Net")
    assert graph_outputs(tree, 2, "m.onnx") is tree and graph_outputs(None, 3, "m.onnx") is None
    with pytest.raises(CheckpointError, match="describes 2 output tensors but the graph has 3"):
        graph_outputs(tree, 3, "m.onnx")
