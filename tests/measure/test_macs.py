"""MAC and parameter counts on layers small enough to compute by hand (formula beside each number)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netsculpt.errors import ConfigError, NetsculptWarning, TraceError
from netsculpt.measure import count_macs, count_params
from netsculpt.measure import macs as macs_module


def macs_of(model: nn.Module, *inputs: torch.Tensor) -> int:
    return count_macs(model, inputs)[0]


def test_single_conv() -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    # out 8x16x16; each output element: 3 in-channels x 3x3 kernel -> 8*16*16 * 3*3*3 = 55,296
    # (the bias add is not a MAC)
    assert macs_of(conv, torch.randn(1, 3, 16, 16)) == 8 * 16 * 16 * 3 * 3 * 3 == 55_296
    assert count_params(conv) == 8 * 3 * 3 * 3 + 8


def test_strided_conv_batch_scales_linearly() -> None:
    conv = nn.Conv2d(4, 6, kernel_size=3, stride=2, bias=False)
    # out 7x7 from 15x15 ((15-3)/2+1); per sample 6*7*7 * 4*3*3 = 10,584; batch 2 doubles it
    assert macs_of(conv, torch.randn(2, 4, 15, 15)) == 2 * 6 * 7 * 7 * 4 * 3 * 3


def test_grouped_and_depthwise_conv() -> None:
    grouped = nn.Conv2d(8, 12, kernel_size=3, padding=1, groups=4)
    # each output sees only 8/4 = 2 input channels: 12*10*10 * 2*3*3 = 21,600
    assert macs_of(grouped, torch.randn(1, 8, 10, 10)) == 12 * 10 * 10 * 2 * 3 * 3
    depthwise = nn.Conv2d(16, 16, kernel_size=3, padding=1, groups=16)
    # one input channel per output: 16*10*10 * 1*3*3 = 14,400
    assert macs_of(depthwise, torch.randn(1, 16, 10, 10)) == 16 * 10 * 10 * 3 * 3


def test_conv_transpose_grouped() -> None:
    deconv = nn.ConvTranspose2d(4, 6, kernel_size=3, stride=2, groups=2)
    # every input element scatters into (6/2) out-channels x 3x3 taps: 4*5*5 * 3 * 9 = 2,700
    assert macs_of(deconv, torch.randn(1, 4, 5, 5)) == 4 * 5 * 5 * 3 * 9


def test_linear_and_3d_linear() -> None:
    linear = nn.Linear(20, 30)
    assert macs_of(linear, torch.randn(4, 20)) == 4 * 20 * 30  # batch x in x out
    assert macs_of(linear, torch.randn(2, 5, 20)) == 2 * 5 * 20 * 30  # tokens flatten into the batch


class Bilinear(nn.Module):
    """A custom module doing its own matmul: the op must be seen though no nn.Linear is involved."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight) @ self.weight.T


def test_matmul_in_custom_module() -> None:
    # (3x6)@(6x7) = 3*6*7 = 126, then (3x7)@(7x6) = 3*7*6 = 126
    macs, layers = count_macs(Bilinear(), torch.randn(3, 6))
    assert macs == 2 * 3 * 6 * 7
    assert [(layer.name, layer.macs, layer.params) for layer in layers] == [("", 252, 42)]


def test_batched_matmul_and_baddbmm() -> None:
    class Ops(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.baddbmm(torch.zeros(2, 3, 5), a, b) + torch.bmm(a, b)

    # two (3x4)@(4x5) per batch of 2: 2 * 2*3*4*5 = 240; the elementwise add counts nothing
    assert macs_of(Ops(), torch.randn(2, 3, 4), torch.randn(2, 4, 5)) == 2 * 2 * 3 * 4 * 5


def test_scaled_dot_product_attention() -> None:
    class Attention(nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.randn(2, 3, 7, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 4)
    # QK^T: B*H*L*S*E = 2*3*7*5*8 = 1,680; AV: B*H*L*S*Ev = 2*3*7*5*4 = 840
    assert macs_of(Attention(), q, k, v) == 2 * 3 * 7 * 5 * (8 + 4)


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention(batch_first: bool) -> None:
    length, dim = 10, 16
    mha = nn.MultiheadAttention(dim, num_heads=2, batch_first=batch_first)
    x = torch.randn(1, length, dim) if batch_first else torch.randn(length, 1, dim)
    # q, k, v and out projections 4*L*E^2 = 10,240; QK^T and AV 2*L^2*E = 3,200 (heads split E, no change).
    # batch_first in eval takes a fused fast path no FLOP table covers; it must not count as zero.
    assert macs_of(mha, x, x, x) == 4 * length * dim * dim + 2 * length * length * dim


def test_transformer_encoder_layer() -> None:
    length, dim, hidden = 6, 16, 32
    layer = nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=hidden, batch_first=True)
    # attention as above plus the two feed-forward linears 2*L*E*hidden
    expected = 4 * length * dim * dim + 2 * length * length * dim + 2 * length * dim * hidden
    assert macs_of(layer, torch.randn(1, length, dim)) == expected


def test_norm_activation_pool_elementwise_count_nothing() -> None:
    model = nn.Sequential(
        nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Softmax(1)
    )
    assert macs_of(model, torch.randn(1, 4, 8, 8)) == 0


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.unused = nn.Linear(5, 5)
        self.head = nn.Linear(4 * 8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def test_layer_breakdown_adds_up() -> None:
    model = Small()
    macs, layers = count_macs(model, torch.randn(1, 3, 8, 8))
    names = [layer.name for layer in layers]
    assert names == ["features.0", "features.1", "features.2", "head", "unused"]  # run order, unused last
    assert sum(layer.macs for layer in layers) == macs == 4 * 8 * 8 * 3 * 9 + 256 * 2
    assert sum(layer.params for layer in layers) == count_params(model)
    by_name = {layer.name: layer for layer in layers}
    assert by_name["features.0"].output_shape == (1, 4, 8, 8)
    assert by_name["head"].output_shape == (1, 2)
    assert by_name["unused"].output_shape is None and by_name["unused"].macs == 0
    assert by_name["features.1"].type == "BatchNorm2d"


def test_shared_module_counts_every_call_and_params_once() -> None:
    linear = nn.Linear(4, 4)
    model = nn.Sequential(linear, nn.ReLU(), linear)
    macs, layers = count_macs(model, torch.randn(1, 4))
    assert macs == 2 * 4 * 4  # two calls of a 4x4 linear
    assert count_params(model) == 4 * 4 + 4  # one set of weights
    assert sum(layer.params for layer in layers) == count_params(model)


def test_modes_are_restored() -> None:
    model = Small().train()
    model.features[1].eval()  # a frozen BN inside a training model must stay frozen, and the rest training
    count_macs(model, torch.randn(1, 3, 8, 8))
    assert model.training and model.head.training and not model.features[1].training


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ConfigError, match="hold no tensor"):
        count_macs(Small(), (3, "x"))
    with pytest.raises(ConfigError, match=r"wrap it, \(inputs_dict,\)"):
        count_macs(Small(), {"x": torch.randn(1, 3, 8, 8)})
    with pytest.raises(ConfigError, match="non-empty tuple"):
        count_macs(Small(), ())
    with pytest.raises(ConfigError, match="failed on example inputs"):
        count_macs(Small(), torch.randn(1, 5, 8, 8))
    with pytest.raises(ConfigError, match=r"torch\.nn\.Module"):
        count_params("resnet")  # type: ignore[arg-type]


def _rnn_textbook(rnn: nn.RNNBase, tokens: int) -> int:
    """Per token, each layer and direction multiplies its input by W_ih (gates*H x in) and its previous
    output by W_hh (gates*H x out); an LSTM with ``proj_size`` also projects H -> P. gates: LSTM 4, GRU 3."""
    gates = {"LSTM": 4, "GRU": 3}.get(type(rnn).__name__, 1)
    dirs = 2 if rnn.bidirectional else 1
    hidden, proj = rnn.hidden_size, rnn.proj_size
    out = proj or hidden
    per_token = 0
    for layer in range(rnn.num_layers):
        width_in = rnn.input_size if layer == 0 else dirs * out
        per_token += dirs * (gates * hidden * (width_in + out) + hidden * proj)
    return tokens * per_token


class Recurrent(nn.Module):
    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn
        self.fc = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(x)[0])


@pytest.mark.parametrize(
    "rnn",
    [
        nn.LSTM(32, 24, batch_first=True),  # CPU float32: the fused oneDNN kernel `mkldnn_rnn_layer`
        nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True),
        nn.LSTM(8, 6, bias=False, batch_first=True),
        nn.GRU(8, 6, num_layers=2, bidirectional=True, batch_first=True),
        nn.RNN(8, 6, nonlinearity="relu", batch_first=True),
    ],
    ids=["lstm", "lstm-2layer-bidir", "lstm-nobias", "gru-2layer-bidir", "rnn-relu"],
)
def test_recurrent_layers_count_the_textbook_macs(rnn: nn.RNNBase) -> None:
    model = Recurrent(rnn)
    x = torch.randn(3, 7, rnn.input_size)  # batch 3, 7 steps: 21 tokens
    macs, layers = count_macs(model, x)
    by_name = {layer.name: layer.macs for layer in layers}
    assert by_name["rnn"] == _rnn_textbook(rnn, tokens=21)
    assert macs == by_name["rnn"] + 21 * model.fc.in_features * 10


def test_lstm_projection_and_float64_take_the_unfused_path_with_the_same_count() -> None:
    proj = nn.LSTM(8, 6, proj_size=3, num_layers=2)  # oneDNN has no projections: per-step mm/addmm
    assert macs_of(proj, torch.randn(5, 2, 8)) == _rnn_textbook(proj, tokens=10)
    double = nn.LSTM(8, 6, bidirectional=True).double()
    assert macs_of(double, torch.randn(5, 2, 8, dtype=torch.float64)) == _rnn_textbook(double, tokens=10)


def test_packed_sequence_counts_only_real_steps() -> None:
    lstm = nn.LSTM(8, 6)
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 8), torch.tensor([5, 3]))
    assert count_macs(lstm, (packed,))[0] == _rnn_textbook(lstm, tokens=5 + 3)


def test_matrix_vector_and_bilinear_are_counted() -> None:
    class MatVec(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(6, 7))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.weight @ x  # a matrix times a vector runs aten.mv

    assert macs_of(MatVec(), torch.randn(7)) == 6 * 7
    # y_k = x1^T W_k x2 for every sample: N * out * in1 * in2
    assert macs_of(nn.Bilinear(8, 6, 4), torch.randn(3, 8), torch.randn(3, 6)) == 3 * 4 * 8 * 6


class Solver(nn.Module):
    """Runs an op with real arithmetic on its weight that no MAC formula covers."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(4) * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(self.weight, x)


def test_uncounted_op_on_a_weight_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(macs_module, "_WARNED", set())
    model = nn.Sequential(nn.Linear(4, 4), Solver())
    with pytest.warns(NetsculptWarning, match=r"_linalg_solve_ex.*in `1`.*not counted"):
        count_macs(model, torch.randn(4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        count_macs(model, torch.randn(4, 4))  # once per process: the second count is quiet


def test_lookups_norms_and_weight_parametrizations_do_not_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(macs_module, "_WARNED", set())

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 8)
            self.norm = nn.LayerNorm(8)
            self.proj = nn.utils.parametrizations.weight_norm(nn.Linear(8, 8))
            self.rnn = nn.GRU(8, 8, batch_first=True)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            h = self.proj(self.norm(self.embed(idx)))
            h = self.rnn(h)[0]
            return self.attn(h, h, h)[0]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert count_macs(Mixed(), torch.randint(0, 10, (2, 5)))[0] > 0


class _RunsACopy(nn.Module):
    """A forward that runs a copy of one of its layers (ultralytics' YOLO predicts with a fused copy):
    ``copy.deepcopy`` copies the counting hooks onto a module that is not in the model. (A forward
    that runs none of its own layers is refused: the test below.)"""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(copy.deepcopy(self.conv)(x))


def test_macs_of_a_forward_that_runs_a_copy_of_its_layer_go_to_the_caller() -> None:
    x = torch.rand(1, 3, 10, 10)
    total, layers = count_macs(_RunsACopy(), x)
    copied, head = 8 * 3 * 9 * 8 * 8, 2 * 8 * 8 * 8  # the copy's conv counted once, under the caller
    assert total == copied + head
    assert {layer.name: layer.macs for layer in layers} == {"": copied, "conv": 0, "head": head}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


class _RunsACopyOfItsNetwork(nn.Module):
    """As ultralytics' YOLO object: forward runs a fused copy of the network it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.model = _Net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return copy.deepcopy(self.model)(x)


class _WeightsDirectly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.conv2d(x, self.conv.weight, self.conv.bias).mean((2, 3)), self.fc.weight)


def test_a_forward_that_runs_a_copy_of_its_network_is_refused() -> None:
    # it was counted (and ns.measure timed it) as if it were the model: the copy's MACs, the wrapper's name
    from netsculpt import measure

    x = torch.randn(1, 3, 8, 8)
    for call in (count_macs, measure):
        with pytest.raises(TraceError, match=r"ran none of its own layers.*`\.model` \(_Net, 122 param"):
            call(_RunsACopyOfItsNetwork(), x)
    # a forward that reads its layers' weights itself (a conv's weight as it is, a linear's transposed
    # view) is the model's own compute
    assert count_macs(_WeightsDirectly(), x)[0] == 4 * 3 * 9 * 36 + 2 * 4
