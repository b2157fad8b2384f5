"""Feature hints (FitNets): pull a student layer's output towards the matching teacher layer's.

Pruning keeps layer names but narrows them, so a hint pairs a student layer with a teacher layer and,
where their widths differ, maps the student's channels up to the teacher's with a learned 1x1 adapter
(a 1x1 convolution for feature maps, a linear map for ``(batch, features)`` outputs). The adapters are
trained with the student but belong to the loss, never to the student: the saved student is exactly the
pruned architecture.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.errors import ConfigError, a_type

_CONV_BY_DIM = {3: nn.Conv1d, 4: nn.Conv2d, 5: nn.Conv3d}


def find_module(model: nn.Module, name: str, role: str) -> nn.Module:
    """``model``'s submodule ``name``, or a ConfigError listing the closest names."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ConfigError(f"the {role} has no layer named {name!r} to take a feature hint from{hint}")


class FeatureTap:
    """Records the outputs of some named layers during the forward passes run inside ``with tap:``.

    Hooks exist only inside the ``with`` block, so no hook is ever left on (or saved with) a model.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], role: str) -> None:
        self.modules = [(name, find_module(model, name, role)) for name in names]
        self.features: dict[str, Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> FeatureTap:
        self.features = {}
        for name, module in self.modules:
            self._handles.append(module.register_forward_hook(self._recorder(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _recorder(self, name: str):
        def record(module: nn.Module, args: object, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                raise ConfigError(
                    f"layer {name!r} returns {a_type(output)}, not a tensor; "
                    "take the hint from a layer whose output is one feature tensor"
                )
            self.features[name] = output

        return record


def check_recorded(tap: FeatureTap, role: str) -> None:
    """Every tapped layer must have run: a layer the forward pass skips cannot give a hint."""
    missing = [name for name, _ in tap.modules if name not in tap.features]
    if missing:
        raise ConfigError(
            f"the {role}'s forward pass never called {', '.join(map(repr, missing))}; "
            "take hints from layers the model actually runs"
        )


def make_adapter(
    student_shape: torch.Size, teacher_shape: torch.Size, pair: tuple[str, str], generator: torch.Generator
) -> nn.Module | None:
    """A bias-free 1x1 map from the student's channels (dim 1) to the teacher's; None if they agree.

    Initialised like PyTorch's default conv/linear init, but from ``generator`` so the same seed gives
    the same adapters whatever else drew from torch's global generator before.
    """
    s_name, t_name = pair
    if len(student_shape) != len(teacher_shape) or len(student_shape) not in (2, *_CONV_BY_DIM):
        raise ConfigError(
            f"hint {s_name!r} -> {t_name!r}: feature shapes {tuple(student_shape)} and "
            f"{tuple(teacher_shape)} cannot be matched; pair layers whose outputs are (N, C) or "
            "(N, C, ...) with the same rank"
        )
    if student_shape[2:] != teacher_shape[2:]:
        raise ConfigError(
            f"hint {s_name!r} -> {t_name!r}: spatial sizes differ ({tuple(student_shape[2:])} vs "
            f"{tuple(teacher_shape[2:])}); pair layers at the same resolution"
        )
    c_s, c_t = int(student_shape[1]), int(teacher_shape[1])
    if c_s == c_t:
        return None
    dim = len(student_shape)
    adapter = nn.Linear(c_s, c_t, bias=False) if dim == 2 else _CONV_BY_DIM[dim](c_s, c_t, 1, bias=False)
    nn.init.kaiming_uniform_(adapter.weight, a=math.sqrt(5), generator=generator)
    return adapter


class HintAdapters(nn.Module):
    """One adapter (or identity) per hint pair; the learnable part of a distillation loss."""

    def __init__(self, adapters: Sequence[nn.Module | None]) -> None:
        super().__init__()
        self.adapters = nn.ModuleList([a if a is not None else nn.Identity() for a in adapters])

    def hint_loss(self, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
        """Mean over pairs of the mean squared error between adapted student and teacher features."""
        terms = [F.mse_loss(adapter(s), t.detach()) for adapter, s, t in zip(self.adapters, student, teacher)]
        return torch.stack(terms).mean()


def move(value: object, device: torch.device) -> object:
    """Tensors inside lists / tuples moved (a detector's example input is a list of images)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list | tuple):
        return type(value)(move(v, device) for v in value)
    return value


def build_adapters(
    student: nn.Module,
    teacher: nn.Module,
    pairs: Sequence[tuple[str, str]],
    example_inputs: Tensor,
    seed: int,
) -> HintAdapters:
    """Run both models once on ``example_inputs`` to read the paired feature shapes, then build adapters."""
    s_tap = FeatureTap(student, [s for s, _ in pairs], "student")
    t_tap = FeatureTap(teacher, [t for _, t in pairs], "teacher")
    modes = (student.training, teacher.training)
    student.eval()
    teacher.eval()
    try:
        with torch.no_grad(), s_tap, t_tap:
            student(move(example_inputs, _device(student)))
            teacher(move(example_inputs, _device(teacher)))
    finally:
        student.train(modes[0])
        teacher.train(modes[1])
    check_recorded(s_tap, "student")
    check_recorded(t_tap, "teacher")
    generator = torch.Generator().manual_seed(seed)
    return HintAdapters(
        [make_adapter(s_tap.features[s].shape, t_tap.features[t].shape, (s, t), generator) for s, t in pairs]
    )


def _device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def hint_taps(
    model: nn.Module, student: nn.Module | None, teacher: nn.Module, hints: list[tuple[str, str]], loss: str
) -> tuple[Any, Any]:
    """Student and teacher taps for one step; no-op contexts when there are no hints.

    Both distillation losses size their adapters for one student, so a different model (a DDP wrapper
    of that student is fine) is refused rather than silently mis-matched.
    """
    if not hints:
        return contextlib.nullcontext(), contextlib.nullcontext()
    if student is None or getattr(model, "module", model) is not student:
        raise ConfigError(
            f"this {loss} was built (and its hint adapters sized) for another student; "
            "build one per student model"
        )
    return (
        FeatureTap(student, [s for s, _ in hints], "student"),
        FeatureTap(teacher, [t for _, t in hints], "teacher"),
    )


def hint_term(learnable: HintAdapters, hints: list[tuple[str, str]], s_tap: Any, t_tap: Any) -> Tensor:
    """The hint term from the features both taps recorded in this step."""
    assert isinstance(s_tap, FeatureTap) and isinstance(t_tap, FeatureTap)
    check_recorded(s_tap, "student")
    check_recorded(t_tap, "teacher")
    s_feats = [s_tap.features[s] for s, _ in hints]
    return learnable.hint_loss(s_feats, [t_tap.features[t] for _, t in hints])
