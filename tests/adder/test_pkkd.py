"""PKKD: the kernel maps are the kernels they claim to be, and one loss trains student and teacher."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netsculpt as ns
from netsculpt.adder import AdderConv2d, PKKDLoss, to_adder
from netsculpt.adder.pkkd import gaussian_conv_kernel, laplace_adder_kernel
from netsculpt.errors import ConfigError
from netsculpt.train import TrainConfig, train


def test_gaussian_kernel_from_conv_output_equals_direct_distances() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1).double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    got = gaussian_conv_kernel(conv, x, conv(x))
    cols = F.unfold(x, 3, padding=1).transpose(1, 2)  # (n, L, patch)
    dist = (cols.unsqueeze(2) - conv.weight.reshape(4, -1)).pow(2).sum(3)  # (n, L, out)
    expected = torch.exp(-dist / (2 * dist.mean())).transpose(1, 2).reshape(2, 4, 5, 5)
    assert torch.allclose(got, expected, atol=1e-10)


def test_laplace_kernel_of_an_adder_is_in_unit_interval() -> None:
    out = AdderConv2d(2, 3, 3)(torch.randn(2, 2, 6, 6))
    k = laplace_adder_kernel(out)
    assert bool((k > 0).all() and (k <= 1).all())


def test_one_pkkd_step_trains_the_student_teacher_and_adapters() -> None:
    torch.manual_seed(0)
    cnn = ns.create_model("lenet5")
    student, teacher = to_adder(cnn), ns.create_model("lenet5")
    loss_fn = PKKDLoss(student, teacher)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    loss, logits = loss_fn(student, x, y)
    loss.backward()
    assert logits.shape == (8, 10) and torch.isfinite(loss)
    assert (
        set(loss_fn.last_terms) == {"ce", "kd", "kernel", "teacher_ce"} and loss_fn.last_terms["kernel"] > 0
    )
    assert student.conv2[0].weight.grad is not None and teacher.conv2.weight.grad is not None
    assert loss_fn.adapters["conv2"].weight.grad is not None


def test_pkkd_runs_in_the_training_loop() -> None:
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)))
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    student = to_adder(ns.create_model("lenet5"))
    loss_fn = PKKDLoss(student, ns.create_model("lenet5"))
    before = loss_fn.teacher.conv2.weight.detach().clone()
    result = train(student, loader, loader, TrainConfig(epochs=1, lr=0.01, warmup_epochs=0), loss_fn=loss_fn)
    assert result.epochs_run == 1 and not torch.equal(before, loss_fn.teacher.conv2.weight)


def test_pkkd_refuses_a_cnn_student_and_a_mismatched_teacher() -> None:
    with pytest.raises(ConfigError, match="to_adder"):
        PKKDLoss(ns.create_model("lenet5"), ns.create_model("lenet5"))
    with pytest.raises(ConfigError, match="conv2"):
        PKKDLoss(to_adder(ns.create_model("lenet5")), nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))


def test_ramp_starts_from_labels_only_and_reaches_the_full_weights() -> None:
    torch.manual_seed(0)
    student = to_adder(ns.create_model("lenet5"))
    loss_fn = PKKDLoss(student, ns.create_model("lenet5"), alpha=0.5, beta=1.0, ramp_steps=4)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    student.train()
    loss, _ = loss_fn(student, x, y)
    terms = loss_fn.last_terms
    assert torch.isclose(loss, torch.tensor(terms["ce"] + terms["teacher_ce"]), atol=1e-5)  # ramp 0
    for _ in range(5):
        loss_fn(student, x, y)
    assert loss_fn.ramp() == 1.0 and loss_fn.runtime_state() == {"step": 6}


def test_ramp_step_is_runtime_state_and_eval_passes_do_not_count() -> None:
    student = to_adder(ns.create_model("lenet5"))
    loss_fn = PKKDLoss(student, ns.create_model("lenet5"), ramp_steps=10)
    loss_fn.load_runtime_state({"step": 5})
    assert loss_fn.ramp() == 0.5
    student.eval()
    loss_fn(student, torch.randn(2, 1, 28, 28), torch.tensor([0, 1]))
    assert loss_fn.runtime_state() == {"step": 5} and loss_fn.recipe()["ramp_steps"] == 10
    with pytest.raises(ConfigError, match="ramp_steps"):
        PKKDLoss(student, ns.create_model("lenet5"), ramp_steps=-1)


def test_mutual_term_pulls_the_teacher_towards_the_student_only_when_asked() -> None:
    torch.manual_seed(0)
    cnn = ns.create_model("lenet5")
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    grads = {}
    for mutual in (0.0, 1.0):
        torch.manual_seed(1)  # the same adder filters both times
        student, teacher = to_adder(copy.deepcopy(cnn)), copy.deepcopy(cnn)
        loss_fn = PKKDLoss(student, teacher, alpha=0.0, mutual=mutual)
        loss, _ = loss_fn(student, x, y)
        loss.backward()
        grads[mutual] = (teacher.fc2.weight.grad.clone(), student.fc2.weight.grad.clone(), loss_fn.last_terms)
    assert "teacher_kd" not in grads[0.0][2] and grads[1.0][2]["teacher_kd"] > 0
    assert not torch.allclose(grads[0.0][0], grads[1.0][0])  # the teacher's gradient changed
    assert torch.equal(grads[0.0][1], grads[1.0][1])  # the student's did not: its logits are detached
    with pytest.raises(ConfigError, match="mutual"):
        PKKDLoss(to_adder(copy.deepcopy(cnn)), copy.deepcopy(cnn), mutual=-1)
