"""nn.LSTM / nn.GRU / nn.RNN: input features and hidden units prune exactly (graph/rules/recurrent.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import netsculpt as ns
from netsculpt.graph import trace
from netsculpt.surgery.verify import pruning_error, random_plan


class Tagger(nn.Module):
    """A projection into a recurrent layer, read either as its last output step or its final hidden state."""

    def __init__(self, rnn: nn.RNNBase, read: str = "output", state: bool = False) -> None:
        super().__init__()
        self.inp, self.rnn, self.read, self.state = nn.Linear(5, rnn.input_size), rnn, read, state
        width = rnn.proj_size or rnn.hidden_size
        self.fc = nn.Linear(width * (2 if rnn.bidirectional and read == "output" else 1), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(self.inp(x))
        if self.state:  # an explicit initial state: hidden units can no longer be removed exactly
            rows, width = self.rnn.num_layers * (2 if self.rnn.bidirectional else 1), self.rnn.hidden_size
            h0 = torch.full((rows, x.shape[0], width), 0.1)
            out, h = self.rnn(y, (h0, h0) if isinstance(self.rnn, nn.LSTM) else h0)
        else:
            out, h = self.rnn(y)
        if self.read == "state":
            return self.fc((h[0] if isinstance(h, tuple) else h)[-1])
        return self.fc(out[:, -1])


def _group(graph: ns.ChannelGraph, tensor: str, dim: int) -> ns.ChannelGroup:
    return next(g for g in graph.groups if any(m.name == tensor and m.dim == dim for m in g.members))


RNNS = {
    "lstm 2 layers, bidirectional": lambda: nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True),
    "gru 2 layers, bidirectional": lambda: nn.GRU(8, 6, num_layers=2, bidirectional=True, batch_first=True),
    "rnn relu, no bias, 3 layers": lambda: nn.RNN(8, 6, 3, nonlinearity="relu", bias=False, batch_first=True),
    "lstm with projections": lambda: nn.LSTM(8, 6, num_layers=2, proj_size=4, batch_first=True),
}


@pytest.mark.parametrize("read", ["output", "state"])
@pytest.mark.parametrize("kind", list(RNNS))
def test_hidden_units_and_input_features_prune_exactly(kind: str, read: str) -> None:
    torch.manual_seed(0)
    model, x = Tagger(RNNS[kind](), read).eval(), torch.randn(2, 7, 5)
    graph = trace(model, x)
    hidden = _group(graph, "rnn.weight_hh_l0", 0)
    assert hidden.n_prunable == 6  # every hidden unit, tied across layers and directions
    assert _group(graph, "inp.weight", 0).n_prunable == 8  # the input features it reads
    plan = random_plan(graph, 0.5, seed=0)
    assert hidden.id in plan.keep
    assert pruning_error(model, graph, plan, x) <= 1e-5  # float32 through the recurrence


def test_pruned_lstm_stores_its_new_widths_and_runs() -> None:
    """Surgery replaces parameters behind RNNBase.__setattr__: the fixup must rebuild _flat_weights."""
    torch.manual_seed(0)
    model, x = Tagger(RNNS["lstm with projections"]()).eval(), torch.randn(2, 7, 5)
    small = ns.prune(model, x, ratio=0.5)
    rnn = small.rnn
    assert (rnn.input_size, rnn.hidden_size, rnn.proj_size) == (4, 3, 2)
    assert [tuple(w.shape) for w in rnn._flat_weights[:5]] == [(12, 4), (12, 2), (12,), (12,), (2, 3)]
    assert small(x).shape == (2, 3)


def test_an_initial_state_pins_the_hidden_units_with_the_reason() -> None:
    model, x = Tagger(RNNS["gru 2 layers, bidirectional"](), state=True).eval(), torch.randn(2, 7, 5)
    graph = trace(model, x)
    hidden = _group(graph, "rnn.weight_hh_l0", 0)
    assert hidden.n_prunable == 0
    assert "initial state" in hidden.reasons[0]
    assert _group(graph, "inp.weight", 0).n_prunable == 8  # the input side still prunes
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) <= 1e-5


class PackedTagger(nn.Module):
    """Padded token ids with their lengths, packed for the LSTM and padded back (or read from h_n)."""

    def __init__(self, enforce_sorted: bool, read: str) -> None:
        super().__init__()
        self.emb, self.fc = nn.Embedding(50, 8), nn.Linear(12, 3)
        self.rnn = nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.enforce_sorted, self.read = enforce_sorted, read

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(
            self.emb(ids), lengths, batch_first=True, enforce_sorted=self.enforce_sorted
        )
        out, (h, _) = self.rnn(packed)
        if self.read == "state":
            return self.fc(torch.cat([h[-2], h[-1]], 1))
        return self.fc(pad_packed_sequence(out, batch_first=True)[0]).sum(1)


@pytest.mark.parametrize("read", ["padded output", "state"])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequences_prune_exactly(enforce_sorted: bool, read: str) -> None:
    """pack_padded_sequence / pad_packed_sequence carry the feature channels (they were ops without a rule,
    pinning the embedding and the hidden size); enforce_sorted=False reorders the batch with index_select."""
    torch.manual_seed(0)
    model = PackedTagger(enforce_sorted, read).eval()
    lengths = torch.tensor([7, 5, 2]) if enforce_sorted else torch.tensor([5, 7, 2])
    x = (torch.randint(0, 50, (3, 7)), lengths)
    graph = trace(model, x)
    assert _group(graph, "emb.weight", 1).n_prunable == 8
    assert _group(graph, "rnn.weight_hh_l0", 0).n_prunable == 6
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) <= 1e-5
    assert ns.prune(model, x, ratio=0.5)(*x).shape == (3, 3)


def test_a_weight_norm_on_a_recurrent_weight_pins_it_with_the_fix() -> None:
    """The parametrized weight is computed in forward, so it has no slice to remove (not a KeyError)."""
    rnn = torch.nn.utils.parametrizations.weight_norm(nn.GRU(8, 6, batch_first=True), "weight_hh_l0")
    model, x = Tagger(rnn).eval(), torch.randn(2, 7, 5)
    graph = trace(model, x)
    reads = _group(graph, "inp.weight", 0)
    assert reads.n_prunable == 0 and "remove the weight norm or parametrization" in reads.reasons[0]


def test_the_hidden_group_is_named_after_the_layer() -> None:
    """Its id is the module's name, as a conv's output group is, so widths= can say {"rnn": 4}."""
    model, x = Tagger(RNNS["lstm 2 layers, bidirectional"]()).eval(), torch.randn(2, 7, 5)
    assert _group(trace(model, x), "rnn.weight_hh_l0", 0).id == "rnn"
    assert ns.prune(model, x, widths={"rnn": 4}).rnn.hidden_size == 4
