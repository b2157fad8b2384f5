"""Prune edits record the structure of the example inputs, so structured-input models reload (issue 14/16)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import netsculpt as ns
from netsculpt.edits.inputs import build_inputs, check_layout, layout_of
from netsculpt.errors import CheckpointError
from tests.coverage._dense import freeze_batch_norm_


def test_layout_round_trips_containers_dtypes_and_leaves() -> None:
    inputs = ([torch.rand(3, 8, 9)], {"ids": torch.ones(2, 5, dtype=torch.int64), "k": 3, "tag": None})
    layout = layout_of(inputs)
    assert layout == [
        {"list": [{"tensor": [3, 8, 9], "dtype": "float32"}]},
        {
            "dict": {
                "ids": {"tensor": [2, 5], "dtype": "int64", "values": [1] * 10},
                "k": {"value": 3},
                "tag": {"value": None},
            }
        },
    ]
    check_layout(layout, "inputs", 1 << 24, 1 << 20)
    rebuilt = build_inputs(layout)
    assert isinstance(rebuilt[0], list) and rebuilt[0][0].shape == (3, 8, 9)
    assert rebuilt[1]["ids"].dtype == torch.int64 and rebuilt[1]["k"] == 3 and rebuilt[1]["tag"] is None


def test_inputs_without_a_json_layout_record_none() -> None:
    class Box:
        pass

    assert layout_of((torch.zeros(1), Box())) is None
    assert layout_of((torch.zeros(1), {1: torch.zeros(1)})) is None  # non-string keys
    assert layout_of((torch.zeros(1), float("nan"))) is None


@pytest.mark.parametrize(
    "layout",
    [
        [],
        [{"tensor": [1, 2], "dtype": "complex128"}],
        [{"tensor": [1 << 13, 1 << 13], "dtype": "float32"}],  # 67 M values: beyond the 16.8 M limit
        [{"tensor": [-1], "dtype": "float32"}],
        [{"module": "os", "call": "system"}],
        [{"list": [{"value": {"nested": 1}}]}],
        [{"tuple": [{"tensor": [1], "dtype": "float32"}] * 17}],
        [{"value": "x" * 1000}],
        [{"value": 1, "dtype": "float32"}],
        [{"tensor": [2], "dtype": "float32", "values": [1, 2]}],  # only integer tensors record values
        [{"tensor": [3], "dtype": "int64", "values": [1, 2]}],  # one value per element
        [{"tensor": [1], "dtype": "int8", "values": [300]}],  # beyond int8
        [{"tensor": [1], "dtype": "bool", "values": [2]}],
        [{"tensor": [1], "dtype": "int64", "values": [1.5]}],
        [{"tensor": [1], "dtype": "int64", "values": [1], "code": "x"}],
    ],
)
def test_bad_layouts_are_refused(layout) -> None:
    with pytest.raises(CheckpointError):
        check_layout(layout, "edits[0].inputs", 1 << 24, 1 << 20)


class _TwoInputs(nn.Module):
    """Takes a list of images and a dict of options, like detection / multi-modal models do."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, images: list[torch.Tensor], options: dict) -> torch.Tensor:
        x = torch.stack(images)
        return self.b(torch.relu(self.a(x))) * options["scale"]


def make_two_inputs() -> nn.Module:
    torch.manual_seed(0)
    return _TwoInputs()


def test_structured_input_model_saves_and_loads(tmp_path) -> None:
    model = make_two_inputs()
    inputs = ([torch.rand(3, 10, 10), torch.rand(3, 10, 10)], {"scale": 2.0})
    small = ns.prune(model, inputs, ratio=0.5)
    ns.save(small, tmp_path / "m")
    loaded = ns.load(tmp_path / "m", model=make_two_inputs())
    with torch.no_grad():
        assert torch.equal(loaded(*inputs), small(*inputs))


@pytest.mark.slow
def test_pruned_torchvision_detector_saves_and_loads(tmp_path) -> None:
    torch.manual_seed(0)
    options = {"min_size": 64, "max_size": 64, "topk_candidates": 10, "detections_per_img": 5}
    build = {"weights": None, "weights_backbone": None, "num_classes": 3, **options}
    model = torchvision.models.get_model("fcos_resnet50_fpn", **build)
    freeze_batch_norm_(model.backbone.body)
    model.eval()
    images = [torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(1))]
    small = ns.prune(model, (images,), ratio=0.5)
    ns.save(small, tmp_path / "det")
    base = torchvision.models.get_model("fcos_resnet50_fpn", **build)
    freeze_batch_norm_(base.backbone.body)
    loaded = ns.load(tmp_path / "det", model=base).eval()
    with torch.no_grad():
        expected, got = small(images)[0], loaded(images)[0]
    assert torch.equal(expected["boxes"], got["boxes"]) and torch.equal(expected["scores"], got["scores"])


class _PoolsAtEos(nn.Module):
    """Reads its token ids as an encoder-decoder's sequence classifier does (BART, T5): it pools at the
    ``</s>`` token and refuses ids without one, so replay on zeros of the ids' shape failed."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        eos = ids.eq(2)
        if not bool(eos.any(dim=1).all()):
            raise ValueError("Each example must contain at least one <eos> token.")
        h = self.fc1(self.embed(ids)).relu()
        return self.fc2(h[eos])


def test_token_ids_replay_with_their_values(tmp_path) -> None:
    torch.manual_seed(0)
    ids = torch.tensor([[5, 7, 9, 2], [4, 2, 11, 2]])
    small = ns.prune(_PoolsAtEos().eval(), (ids,), ratio=0.5)
    assert small.fc1.out_features == 8
    ns.save(small, tmp_path / "m")
    torch.manual_seed(0)
    loaded = ns.load(tmp_path / "m", model=_PoolsAtEos()).eval()
    with torch.no_grad():
        assert torch.equal(loaded(ids), small(ids))


def test_large_integer_inputs_replay_as_zeros() -> None:
    """Only a few sequences' worth of ids is written into the file; bigger ones keep shape and dtype."""
    from netsculpt.edits.inputs import MAX_INT_VALUES

    (node,) = layout_of((torch.ones(MAX_INT_VALUES + 1, dtype=torch.int64),))
    assert node == {"tensor": [MAX_INT_VALUES + 1], "dtype": "int64"}
    assert layout_of((torch.tensor([True, False]),))[0]["values"] == [1, 0]
