"""A frozen batch norm (eval inside a training model) stays frozen after netsculpt looks at the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from netsculpt.modes import eval_mode, module_modes, restore_modes


def _frozen_bn_net() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).train()
    net[1].eval()  # the user froze it
    return net


def _flags(net: nn.Module) -> list[bool]:
    return [m.training for m in net.modules()]


def test_eval_mode_and_restore_modes_put_back_each_modules_flag() -> None:
    net = _frozen_bn_net()
    before = _flags(net)
    with eval_mode(net):
        assert not any(_flags(net))
    assert _flags(net) == before
    modes = module_modes(net)
    net.eval()
    restore_modes(modes)
    assert _flags(net) == before


def _evaluate(net: nn.Module) -> None:
    from netsculpt.train import evaluate

    data = TensorDataset(torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2]))
    evaluate(net, DataLoader(data, batch_size=3))


def _count_ops(net: nn.Module) -> None:
    from netsculpt.adder import count_ops

    count_ops(net, torch.randn(1, 3, 8, 8))


def _run_order(net: nn.Module) -> None:
    from netsculpt.explain.run_order import run_order

    run_order(net, (1, 3, 8, 8))


@pytest.mark.parametrize("look", [_evaluate, _count_ops, _run_order], ids=lambda f: f.__name__)
def test_looking_at_a_model_keeps_a_frozen_norm_frozen(look) -> None:
    net = _frozen_bn_net()
    before = _flags(net)
    look(net)
    assert _flags(net) == before and not net[1].training and net.training


class _TrainLauncher(nn.Module):
    """A module whose ``train()`` means "start a training run", as ultralytics' YOLO engine object's
    does; it has a branch only train mode runs, so tracing retraces it in train mode."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3, padding=1)
        self.aux = nn.Conv2d(8, 2, 1)
        self.head = nn.Conv2d(8, 4, 1)
        self.launched = 0

    def train(self, trainer: object = None, **kwargs: object) -> _TrainLauncher:  # type: ignore[override]
        self.launched += 1  # ultralytics would write runs/ and fetch a data set here
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return (self.head(h), self.aux(h)) if self.training else self.head(h)


def test_switching_modes_never_calls_a_train_method_that_means_something_else() -> None:
    import netsculpt as ns

    net = _TrainLauncher()
    nn.Module.train(net, True)  # flags as built; the class's train() is not nn.Module's
    x = torch.rand(1, 3, 8, 8)
    with eval_mode(net):
        assert not any(_flags(net))
    graph = ns.trace(net, x)  # the aux branch is found by the train-mode retrace
    ns.measure(net, x, latency=False)
    assert net.launched == 0
    assert all(_flags(net))  # and the flags are put back
    assert graph.traced_training


def test_loss_mode_and_layer_recording_set_flags_without_calling_train() -> None:
    from netsculpt.measure.latency_layers import record_calls
    from netsculpt.tasks.detection import loss_mode

    net = _TrainLauncher()
    with loss_mode(net):
        assert net.training and net.head.training
    record_calls(net, torch.rand(1, 3, 8, 8))
    assert net.launched == 0
