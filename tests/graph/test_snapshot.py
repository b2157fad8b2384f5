"""Tracing leaves nothing of netsculpt in the model: what forward wrote is undone (graph/snapshot.py)."""

from __future__ import annotations

import copy
import pickle

import torch
from torch import nn

import netsculpt as ns
from netsculpt.graph.sizes import ChannelCount, plain
from tests.graph.archs import cbr, randomize_


class ShapeCachingHead(nn.Module):
    """Like ultralytics' ``Detect``: caches the input's shape and grid tensors built from it on itself."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.head = cbr(3, 8), nn.Conv2d(8, 6, 1)
        self.shape: torch.Size | None = None
        self.anchors = torch.empty(0)
        self.seen: list[object] = []
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        shape = x.shape
        if self.shape != shape:
            h, w = shape[2], shape[3]
            self.anchors = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
            self.shape = shape
        self.seen.append(shape[1])  # a container the module owns, appended to in forward
        self.cache = {"channels": x.size(1)}  # an attribute that did not exist before
        self.calls += 1  # a buffer written in place
        return self.head(x) + self.anchors.sum()


def test_trace_leaves_the_model_as_it_was() -> None:
    model, x = randomize_(ShapeCachingHead()), torch.randn(1, 3, 8, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attrs = dict(vars(model))
    model.train()
    model.stem.eval()  # a submodule deliberately in another mode keeps it
    graph = ns.trace(model, x)
    assert graph.prunable_groups
    assert model.shape is None and model.anchors.numel() == 0 and not hasattr(model, "cache")
    assert model.seen == [8] and type(model.seen[0]) is int  # appended count scrubbed to a plain int
    assert model.training and not model.stem.training
    assert set(vars(model)) == set(attrs)
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    copy.deepcopy(model)
    pickle.loads(pickle.dumps(model))
    small = ns.prune(model.eval(), x, ratio=0.5)
    assert small(x).shape == model(x).shape


def test_counts_copy_and_pickle_as_plain_ints() -> None:
    count = ChannelCount(8, value_id=3, dim=1)
    size = torch.Size([1, count, 4])
    for out in (copy.copy(count), copy.deepcopy(count), pickle.loads(pickle.dumps(count))):
        assert type(out) is int and out == 8
    assert [type(n) for n in copy.deepcopy(size)] == [int, int, int]
    assert b"netsculpt" not in pickle.dumps(size)
    nested = plain({"a": [size, (count, 2)]})
    assert type(nested["a"][0]) is torch.Size and type(nested["a"][0][1]) is int
    assert type(nested["a"][1][0]) is int
