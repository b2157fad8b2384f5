"""PKKD: progressive kernel-based knowledge distillation for adder networks (Xu et al., "Kernel Based
Progressive Distillation for Adder Neural Networks", NeurIPS 2020).

A CNN of the same architecture (the teacher) is trained *at the same time* as the adder student, from
labels only, so the student follows a teacher that improves with it (the "progressive" part) rather than
a fixed, far-away one. An adder layer's output is an L1 distance and a conv's an inner product, so their
feature distributions differ; both are mapped by a kernel into a space where they compare:

    teacher (conv):  Gaussian  exp(-||x - f||^2 / (2 s_t^2)),  ||x - f||^2 = ||x||^2 + ||f||^2 - 2 conv(x, f)
    student (adder): Laplacian exp(-||x - f||_1 / s_s) = exp(adder output / s_s)

(the kernels combine each layer's input features with its weights), and the student's kernel map passes
a 1x1 conv (initialised to identity) before the mean squared error to the teacher's. The bandwidths are
the batch means of the distances, so the maps stay in (0, 1] whatever the layer's scale. The student's
loss is ``(1 - a) CE + a * KD(T) + b * kernel loss``; the teacher's is its CE, plus ``mutual`` times the
KD term towards the student's soft labels when ``mutual > 0`` (deep-mutual-learning style, which keeps the
co-trained teacher from running far ahead of a student that learns more slowly; off by default, not yet
measured to help here); one optimizer steps both (the teacher and the 1x1 convs are the loss's
``learnable`` part).

``ramp_steps`` makes the distillation itself progressive: ``a = alpha * r`` and ``b = beta * r`` with
``r = min(1, step / ramp_steps)``, because at the start the jointly trained teacher is a random network
and its soft labels and kernel maps only pull the student towards noise (measured on LeNet-5: without
the ramp the student sat at 23 % after the first epoch where the ANN from labels was at 66 %). The step
counter is the loss's ``runtime_state``, so a resumed run continues the ramp where it stopped.

The kernel loss compares channel ``i`` of the student with channel ``i`` of the teacher, so the two should
start from the same network: convert with ``to_adder(cnn, copy_filters=True)`` and pass ``cnn`` (still
untrained) as the teacher. On LeNet-5 / mnist5k with 5 epochs that start, the kernel term alone
(``alpha=0``) was the setting that helped on held-out digits; the soft-label term from the co-trained
teacher lowered the student (docs/adder.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.adder.layer import AdderConv2d
from netsculpt.errors import ConfigError
from netsculpt.spec import model_spec
from netsculpt.train.distill import kd_loss


def _adder_layers(student: nn.Module) -> dict[str, AdderConv2d]:
    """Converted layer name (as in the CNN) → its AdderConv2d, read from the student's adder edit."""
    spec = model_spec(student)
    edits = [e for e in (spec or {}).get("edits", []) if e.get("kind") == "adder"]
    if not edits:
        raise ConfigError("pkkd needs a student made by netsculpt.adder.to_adder (it has no adder edit)")
    found = {}
    for edit in edits:
        for layer in edit["layers"]:
            module = student.get_submodule(layer["name"])
            found[layer["name"]] = module[0] if isinstance(module, nn.Sequential) else module
    return found


def gaussian_conv_kernel(conv: nn.Conv2d, x: Tensor, out: Tensor) -> Tensor:
    """``exp(-||patch - filter||^2 / (2 s^2))`` of a conv from its input and output (bias removed)."""
    dot = out if conv.bias is None else out - conv.bias.view(1, -1, 1, 1)
    ones = torch.ones(1, *conv.weight.shape[1:], device=x.device, dtype=x.dtype)
    x_sq = F.conv2d(x * x, ones, None, conv.stride, conv.padding, conv.dilation)  # (n, 1, h, w)
    f_sq = conv.weight.pow(2).flatten(1).sum(1).view(1, -1, 1, 1)
    dist = (x_sq + f_sq - 2 * dot).clamp_min(0)
    return torch.exp(-dist / (2 * dist.mean().detach().clamp_min(1e-12)))


def laplace_adder_kernel(out: Tensor) -> Tensor:
    """``exp(-||patch - filter||_1 / s)`` of an adder layer from its output (``-||patch - filter||_1``)."""
    return torch.exp(out / (-out).mean().detach().clamp_min(1e-12))


class _Taps:
    """Forward hooks that keep each tapped layer's input and output for one forward pass."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[Tensor, Tensor]] = {}

    @contextlib.contextmanager
    def on(self, modules: dict[str, nn.Module]) -> Iterator[dict[str, tuple[Tensor, Tensor]]]:
        self.seen = {}
        handles = [m.register_forward_hook(self._recorder(n)) for n, m in modules.items()]
        try:
            yield self.seen
        finally:
            for handle in handles:
                handle.remove()

    def _recorder(self, name: str):
        def record(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
            self.seen[name] = (args[0], output)

        return record


class PKKDLoss(nn.Module):
    """The training loss of an adder ``student`` with a CNN ``teacher`` trained alongside it.

    ``teacher`` is the CNN the student was converted from (or a fresh one of the same architecture);
    it is trained from labels by the same optimizer. After training, ``loss.teacher`` is the CNN.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        alpha: float = 0.5,
        temperature: float = 4.0,
        beta: float = 1.0,
        ramp_steps: int = 0,
        label_smoothing: float = 0.0,
        mutual: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= alpha <= 1 or not temperature > 0 or not beta >= 0 or not mutual >= 0:
            raise ConfigError(
                f"pkkd needs 0 <= alpha <= 1, temperature > 0, beta >= 0, mutual >= 0; got {alpha}, "
                f"{temperature}, {beta}, {mutual}"
            )
        if ramp_steps < 0 or not 0 <= label_smoothing < 1:
            raise ConfigError(
                f"pkkd needs ramp_steps >= 0 and 0 <= label_smoothing < 1; "
                f"got {ramp_steps}, {label_smoothing}"
            )
        self.alpha, self.temperature, self.beta = alpha, temperature, beta
        self.ramp_steps, self.label_smoothing = int(ramp_steps), float(label_smoothing)
        self.mutual = float(mutual)
        self.step = 0
        self.names = sorted(_adder_layers(student))
        convs = {}
        for name in self.names:
            try:
                conv = teacher.get_submodule(name)
            except AttributeError:
                conv = None
            if not isinstance(conv, nn.Conv2d):
                raise ConfigError(
                    f"the pkkd teacher has no Conv2d {name!r}; pass a CNN of the student's architecture"
                )
            convs[name] = conv
        self.teacher = teacher
        adapters = {}
        for name in self.names:
            channels = convs[name].out_channels
            adapter = nn.Conv2d(channels, channels, 1)
            with torch.no_grad():
                adapter.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
                adapter.bias.zero_()
            adapters[name.replace(".", "__")] = adapter
        self.adapters = nn.ModuleDict(adapters)
        self._convs = convs
        self._taps = _Taps()
        self.last_terms: dict[str, float] = {}

    @property
    def learnable(self) -> nn.Module:
        return self

    def recipe(self) -> dict[str, Any]:
        return {
            "loss": "pkkd",
            "alpha": self.alpha,
            "temperature": self.temperature,
            "beta": self.beta,
            "ramp_steps": self.ramp_steps,
            "label_smoothing": self.label_smoothing,
            "mutual": self.mutual,
            "layers": self.names,
        }

    def runtime_state(self) -> dict[str, Any]:
        """The step counter that drives the ramp (checkpointed by the training loop)."""
        return {"step": self.step}

    def load_runtime_state(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])

    def ramp(self) -> float:
        """The share of the distillation weights in force at the current step (1 without a ramp)."""
        return 1.0 if self.ramp_steps == 0 else min(1.0, self.step / self.ramp_steps)

    def forward(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        student = getattr(model, "module", model)
        adders = _adder_layers(student)
        with self._taps.on(adders) as s_seen:
            logits = model(inputs)
            s_seen = dict(s_seen)
        with self._taps.on(self._convs) as t_seen:
            t_logits = self.teacher(inputs)
            t_seen = dict(t_seen)
        teacher_ce = F.cross_entropy(t_logits, targets, label_smoothing=self.label_smoothing)
        ce = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        kd = kd_loss(logits, t_logits.detach(), self.temperature)
        kernel = logits.new_zeros(())
        for name in self.names:
            with torch.no_grad():
                t_map = gaussian_conv_kernel(self._convs[name], *t_seen[name])
            s_map = self.adapters[name.replace(".", "__")](laplace_adder_kernel(s_seen[name][1]))
            kernel = kernel + F.mse_loss(s_map, t_map)
        kernel = kernel / max(1, len(self.names))
        ramp = self.ramp()
        if model.training:
            self.step += 1
        alpha, beta = self.alpha * ramp, self.beta * ramp
        student_loss = (1 - alpha) * ce + alpha * kd + beta * kernel
        teacher_loss = teacher_ce
        terms = {"ce": ce, "kd": kd, "kernel": kernel, "teacher_ce": teacher_ce}
        if self.mutual:  # the teacher also follows the student's soft labels (deep mutual learning)
            terms["teacher_kd"] = kd_loss(t_logits, logits.detach(), self.temperature)
            teacher_loss = teacher_loss + self.mutual * ramp * terms["teacher_kd"]
        self.last_terms = {k: float(v.detach()) for k, v in terms.items()}
        return student_loss + teacher_loss, logits
