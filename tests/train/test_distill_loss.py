"""The distillation loss: Hinton's formula by hand, alpha=0 is plain CE, and a frozen teacher."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.train import CrossEntropy, DistillationLoss, DistillConfig, LossFn, TrainConfig, kd_loss, train
from netsculpt.train.distill import mix_batch

from . import _tiny


class FixedLogits(nn.Module):
    """A 'teacher' that answers every input with the same logits, and counts its calls."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.logits[: x.shape[0]]


def _softmax(row: list[float], t: float) -> list[float]:
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


STUDENT = [[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]]
TEACHER = [[2.0, 0.0, 1.0], [0.0, 0.0, 4.0]]


def _hand_kd(t: float) -> float:
    """T^2 * mean over rows of sum_k p_t,k (log p_t,k - log p_s,k), with p = softmax(logits / T)."""
    total = 0.0
    for s_row, t_row in zip(STUDENT, TEACHER):
        ps, pt = _softmax(s_row, t), _softmax(t_row, t)
        total += sum(q * (math.log(q) - math.log(p)) for p, q in zip(ps, pt))
    return t * t * total / len(STUDENT)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_loss_matches_a_hand_computation(temperature: float) -> None:
    value = kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), temperature)
    assert value.item() == pytest.approx(_hand_kd(temperature), rel=1e-5)
    assert (
        kd_loss(torch.tensor(TEACHER), torch.tensor(TEACHER), temperature).abs().item() < 1e-6
    )  # KL(p||p)=0


def test_total_loss_mixes_ce_and_kd_with_alpha() -> None:
    # student = identity on the inputs, so the inputs are the student's logits
    targets = torch.tensor([0, 2])
    alpha, t, smoothing = 0.7, 4.0, 0.1
    loss_fn = DistillationLoss(
        FixedLogits(torch.tensor(TEACHER)),
        DistillConfig(temperature=t, alpha=alpha),
        label_smoothing=smoothing,
    )
    loss, logits = loss_fn(nn.Identity(), torch.tensor(STUDENT), targets)
    ce, _ = CrossEntropy(smoothing)(nn.Identity(), torch.tensor(STUDENT), targets)
    assert loss.item() == pytest.approx((1 - alpha) * ce.item() + alpha * _hand_kd(t), rel=1e-5)
    assert torch.equal(logits, torch.tensor(STUDENT))
    assert set(loss_fn.last_terms) == {"ce", "kd"}
    assert isinstance(loss_fn, LossFn)


def test_alpha_zero_is_plain_cross_entropy_and_skips_the_teacher() -> None:
    teacher = FixedLogits(torch.zeros(32, _tiny.NUM_CLASSES))
    config = TrainConfig(epochs=2, lr=0.1, label_smoothing=0.1)
    models = []
    for loss_fn in (None, DistillationLoss(teacher, DistillConfig(alpha=0.0), label_smoothing=0.1)):
        train_loader, test_loader = _tiny.loaders()
        model = _tiny.model()
        train(model, train_loader, test_loader, config, loss_fn=loss_fn)
        models.append(model)
    _tiny.assert_same_weights(*models)  # bitwise: the same arithmetic as CrossEntropy(label_smoothing)
    assert teacher.calls == 0


def _bn_teacher() -> nn.Module:
    torch.manual_seed(5)
    return nn.Sequential(
        nn.Linear(_tiny.DIM, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3)
    )


def test_teacher_gets_no_gradients_stays_in_eval_and_does_not_change() -> None:
    teacher = _bn_teacher()
    teacher.train()  # the loss must put it in eval mode itself
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    loss_fn = DistillationLoss(teacher, DistillConfig(alpha=0.9))
    seen_modes: list[bool] = []
    teacher.register_forward_pre_hook(lambda module, args: seen_modes.append(module.training))
    train_loader, test_loader = _tiny.loaders()
    train(_tiny.model(), train_loader, test_loader, TrainConfig(epochs=2, lr=0.1), loss_fn=loss_fn)
    assert seen_modes and not any(seen_modes)  # every teacher forward ran in eval mode
    assert all(p.grad is None for p in teacher.parameters())
    for key, value in teacher.state_dict().items():  # weights and BatchNorm running statistics
        assert torch.equal(value, before[key]), key
    teacher.train()  # someone flips it back: the next call still runs it in eval mode
    loss_fn(_tiny.model(), torch.randn(4, _tiny.DIM), torch.tensor([0, 1, 2, 0]))
    assert seen_modes[-1] is False


def test_distillation_pulls_the_student_towards_the_teacher() -> None:
    # alpha=1: labels are ignored, so the only signal is the teacher; KL to it must fall with training
    teacher = _bn_teacher()
    loss_fn = DistillationLoss(teacher, DistillConfig(alpha=1.0, temperature=2.0))
    train_loader, test_loader = _tiny.loaders()
    student = _tiny.model()
    inputs = torch.stack([test_loader.dataset[i][0] for i in range(32)])

    def gap() -> float:
        student.eval()
        with torch.no_grad():
            return kd_loss(student(inputs), teacher(inputs), 2.0).item()

    before = gap()
    train(student, train_loader, test_loader, TrainConfig(epochs=4, lr=0.1), loss_fn=loss_fn)
    assert gap() < 0.5 * before  # 4 epochs at lr 0.1 on a 3-class problem: at least halves


def test_config_validates_and_round_trips() -> None:
    config = DistillConfig(
        temperature=3.0, alpha=0.5, hints=["conv1", ("a", "b")], hint_weight=0.1, mixup=0.4
    )
    assert config.hints == [("conv1", "conv1"), ("a", "b")]
    assert DistillConfig.from_dict(config.to_dict()) == config
    for bad, match in (
        ({"temperature": 0.0}, "temperature"),
        ({"alpha": 1.5}, "alpha"),
        ({"hint_weight": -1.0}, "hint_weight"),
        ({"hints": [("a", "b", "c")]}, "hint"),
        ({"alpha": float("nan")}, "alpha"),
    ):
        with pytest.raises(ConfigError, match=match):
            DistillConfig(**bad)
    with pytest.raises(ConfigError, match="unknown distillation config keys"):
        DistillConfig.from_dict({"temprature": 2.0})


def test_mismatched_classes_are_a_clear_error() -> None:
    loss_fn = DistillationLoss(FixedLogits(torch.zeros(4, 5)), DistillConfig())
    with pytest.raises(ConfigError, match="same classes"):
        loss_fn(nn.Identity(), torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]))


def _linear(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(4, 3)


def test_mixup_mixes_inputs_labels_and_teacher_view_by_hand() -> None:
    student, teacher = _linear(0).train(), _linear(1)
    inputs, targets = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    config = DistillConfig(temperature=2.0, alpha=0.7, mixup=1.0)
    torch.manual_seed(5)
    loss, logits = DistillationLoss(teacher, config)(student, inputs, targets)
    torch.manual_seed(5)
    mixed, partner, lam = mix_batch(inputs, 1.0)
    assert 0.0 < lam < 1.0 and sorted(partner.tolist()) == list(range(6))
    torch.testing.assert_close(mixed, lam * inputs + (1 - lam) * inputs[partner])
    s_logits = student(mixed)
    hard = lam * F.cross_entropy(s_logits, targets) + (1 - lam) * F.cross_entropy(s_logits, targets[partner])
    expected = 0.3 * hard + 0.7 * kd_loss(s_logits, teacher(mixed).detach(), 2.0)
    torch.testing.assert_close(logits, s_logits)
    torch.testing.assert_close(loss, expected)


def test_mixup_is_off_in_eval_mode_and_at_zero() -> None:
    student, teacher = _linear(0), _linear(1)
    inputs, targets = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    plain = DistillationLoss(teacher, DistillConfig(mixup=0.0))(student.train(), inputs, targets)[0]
    mixed_eval = DistillationLoss(teacher, DistillConfig(mixup=1.0))(student.eval(), inputs, targets)[0]
    torch.testing.assert_close(plain, mixed_eval)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), True, "1"])
def test_mixup_must_be_a_non_negative_number(bad: object) -> None:
    with pytest.raises(ConfigError, match="mixup"):
        DistillConfig(mixup=bad)  # type: ignore[arg-type]


class _ProbsAndLogitsInEval(nn.Module):
    """Like an ultralytics classifier: logits while training, (probabilities, logits) in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits = self.fc(x)
        return logits if self.training else (logits.softmax(1), logits)


def test_a_teacher_or_student_returning_a_tuple_is_told_to_return_logits() -> None:
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    loss = DistillationLoss(_ProbsAndLogitsInEval(), DistillConfig(alpha=0.5))
    with pytest.raises(
        ConfigError, match=r"teacher \(in eval mode\) to return \(batch, classes\) logits, got a tuple"
    ):
        loss(nn.Linear(4, 3).train(), x, y)
    with pytest.raises(ConfigError, match=r"student to return \(batch, classes\) logits, got a tuple"):
        DistillationLoss(nn.Linear(4, 3), DistillConfig(alpha=0.5))(_ProbsAndLogitsInEval().eval(), x, y)
