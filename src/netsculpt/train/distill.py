"""Knowledge distillation: fine-tune a pruned student towards its unpruned teacher's outputs.

The loss (Hinton, Vinyals & Dean, 2015) mixes the hard-label cross-entropy with the KL divergence between
teacher and student distributions softened by a temperature ``T``; the KL term is scaled by ``T**2`` so
its gradients keep their size as ``T`` changes:

    loss = (1 - alpha) * CE(student, labels) + alpha * T**2 * KL(softmax(t / T) || softmax(s / T))
           + hint_weight * mean over hints of MSE(adapter(student feature), teacher feature)

With ``mixup > 0`` each training batch is first mixed with a shuffled copy of itself (one ``lam ~
Beta(mixup, mixup)`` per batch); the teacher labels the mixed images and the hard term uses both labels,
weighted by ``lam``.

It plugs into :func:`netsculpt.train.train` through the ``loss_fn`` seam, so distillation inherits the
loop's checkpoints, bitwise resume, NaN rollback and distributed training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.checks import materialised
from netsculpt.errors import ConfigError, a_type
from netsculpt.logits import logits_of
from netsculpt.train.config import TrainConfig
from netsculpt.train.early_stop import EarlyStopping
from netsculpt.train.hints import HintAdapters, build_adapters, hint_taps, hint_term
from netsculpt.train.loop import EpochCallback, language_task, train
from netsculpt.train.result import TrainResult


@dataclass
class DistillConfig:
    """How the student learns from the teacher; the rest of the recipe is the :class:`TrainConfig`.

    ``hints`` pairs student layers with teacher layers, as ``(student_name, teacher_name)`` or one name
    when both models call the layer the same (a pruned model keeps its layer names). ``mixup`` is the
    Beta concentration of in-batch mixup (0: off); see :func:`mix_batch`.
    """

    VERSION: ClassVar[int] = 1

    temperature: float = 4.0
    alpha: float = 0.9
    hints: list[tuple[str, str]] = field(default_factory=list)
    hint_weight: float = 1.0
    mixup: float = 0.0

    def __post_init__(self) -> None:
        self.hints = [_pair(h) for h in self.hints] if isinstance(self.hints, list | tuple) else self.hints
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the bad field and what it accepts."""
        for name, value in (("temperature", self.temperature), ("alpha", self.alpha)):
            if not _is_number(value) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature={self.temperature} must be > 0 (1 = no softening; 4 is common)")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha={self.alpha} must be in [0, 1] (the weight of the distillation term)")
        weight = self.hint_weight
        if not _is_number(weight) or not weight >= 0:
            raise ConfigError(f"hint_weight must be a number >= 0, got {weight!r}")
        mixup = self.mixup
        if not _is_number(mixup) or not (0 <= mixup < math.inf):
            raise ConfigError(
                f"mixup must be a number >= 0 (the Beta(m, m) concentration; 0 turns it off), got {mixup!r}"
            )
        if not isinstance(self.hints, list):
            raise ConfigError(
                f"hints must be a list of layer names or (student, teacher) pairs, got {self.hints!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["hints"] = [list(pair) for pair in self.hints]
        return {"version": self.VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(data, dict):
            raise ConfigError(f"a distillation config must be a mapping, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", cls.VERSION)
        if version != cls.VERSION:
            raise ConfigError(f"distillation config version {version!r} is not supported ({cls.VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown distillation config keys {unknown}; valid: {', '.join(sorted(known))}"
            )
        return cls(**data)


def _is_number(value: object) -> bool:
    """An int or float, but not a bool (``True`` is an int to Python, never a sensible weight)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pair(hint: object) -> tuple[str, str]:
    if isinstance(hint, str):
        return (hint, hint)
    if isinstance(hint, list | tuple) and len(hint) == 2 and all(isinstance(h, str) for h in hint):
        return (hint[0], hint[1])
    raise ConfigError(f"a hint is a layer name or a (student_layer, teacher_layer) pair, got {hint!r}")


def _check_logits(output: Any, who: str) -> None:
    """Classification distillation reads (batch, classes) logits from both models; a model returning a
    tuple (e.g. (probabilities, logits) in eval mode) must be wrapped to return the logits."""
    if not isinstance(output, Tensor) or output.dim() != 2:
        got = f"shape {tuple(output.shape)}" if isinstance(output, Tensor) else a_type(output)
        raise ConfigError(
            f"distillation expects the {who} to return (batch, classes) logits, got {got}; wrap the model "
            "so that forward returns the logits tensor"
        )


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T**2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch."""
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * (temperature * temperature)


def mix_batch(inputs: Tensor, concentration: float) -> tuple[Tensor, Tensor, float]:
    """Mixup within a batch: ``lam * x + (1 - lam) * x[partner]``, ``lam ~ Beta(c, c)``.

    Under distillation the teacher labels every mixed image, so the student learns the teacher's function
    between the training images too ("function matching", Beyer et al., CVPR 2022): for a small student on
    little data that is extra supervision the raw labels cannot give. Draws from the global torch
    generator, which the training loop seeds and checkpoints, so resumed runs replay the same mixes.
    Returns the mixed batch, the partner index of every sample and ``lam``."""
    lam = float(torch.distributions.Beta(concentration, concentration).sample())
    partner = torch.randperm(inputs.shape[0], device=inputs.device)
    return lam * inputs + (1.0 - lam) * inputs[partner], partner, lam


def teacher_fingerprint(teacher: nn.Module) -> str:
    """A short hash of the teacher's weights: resuming a distillation run with another teacher is refused."""
    digest = hashlib.sha256()
    for name, tensor in sorted(teacher.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class TeacherLoss:
    """What every distillation loss shares: an eval-mode teacher run only under ``torch.no_grad()``,
    hint adapters sized on the student, and a fingerprint of the teacher that a resume must match.

    Subclasses compute the task's terms and call :meth:`_with_hints` to add the feature hints.
    """

    _who: ClassVar[str] = "distillation loss"  # names the loss in errors about its hint layers

    def __init__(
        self,
        teacher: nn.Module,
        config: DistillConfig | None = None,
        *,
        student: nn.Module | None = None,
        example_inputs: Any = None,
        seed: int = 0,
    ) -> None:
        self.config = config or DistillConfig()
        self.config.validate()
        self.teacher = materialised(teacher, "distil from").eval()
        self.student = student
        self.learnable = HintAdapters([])
        self.last_terms: dict[str, Tensor] = {}
        if self.config.hints:
            if student is None or example_inputs is None:
                raise ConfigError(
                    "feature hints need the student and example inputs to size their adapters: pass "
                    "student=... and example_inputs=... (one input batch)"
                )
            self.learnable = build_adapters(student, self.teacher, self.config.hints, example_inputs, seed)
        self.fingerprint = teacher_fingerprint(teacher)

    def _taps(self, model: nn.Module) -> tuple[Any, Any]:
        return hint_taps(model, self.student, self.teacher, self.config.hints, self._who)

    def _teacher(self) -> nn.Module:
        """The teacher, back in eval mode if someone switched it to training mode."""
        if self.teacher.training:
            self.teacher.eval()
        return self.teacher

    def _with_hints(self, loss: Tensor, terms: dict[str, Tensor], s_tap: Any, t_tap: Any) -> Tensor:
        """``loss`` plus the weighted hint term when hints are set; every term is kept for logging."""
        if self.config.hints:
            terms["hint"] = hint_term(self.learnable, self.config.hints, s_tap, t_tap)
            loss = loss + self.config.hint_weight * terms["hint"]
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        return loss

    def to(self, device: torch.device | str) -> Self:
        """Move the teacher and the adapters (the loop calls this with its training device)."""
        self.teacher.to(device)
        self.learnable.to(device)
        return self


class DistillationLoss(TeacherLoss):
    """A :data:`netsculpt.train.LossFn` that distils ``teacher`` into the model being trained.

    The teacher is put in eval mode and only ever run under ``torch.no_grad()``: it gets no gradients,
    its BatchNorm statistics never move, and it is not part of the optimizer. Hint adapters live in
    ``self.learnable``; the training loop trains and checkpoints them but saves only the student.
    """

    _who = "DistillationLoss"

    def __init__(
        self,
        teacher: nn.Module,
        config: DistillConfig | None = None,
        *,
        student: nn.Module | None = None,
        example_inputs: Tensor | None = None,
        label_smoothing: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(teacher, config, student=student, example_inputs=example_inputs, seed=seed)
        self.label_smoothing = label_smoothing

    def recipe(self) -> dict[str, Any]:
        """Plain data the loop stores in checkpoints and compares on resume."""
        return {
            "loss": "distill",
            **self.config.to_dict(),
            "label_smoothing": self.label_smoothing,
            "teacher": self.fingerprint,
        }

    def __call__(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        hints, alpha = self.config.hints, self.config.alpha
        mixed = self.config.mixup > 0 and model.training
        if mixed:
            inputs, partner, lam = mix_batch(inputs, self.config.mixup)
        s_tap, t_tap = self._taps(model)
        with s_tap:
            logits = logits_of(model(inputs))  # a Hugging Face ModelOutput: its .logits
        _check_logits(logits, "student")
        hard = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        if mixed:
            other = F.cross_entropy(logits, targets[partner], label_smoothing=self.label_smoothing)
            hard = lam * hard + (1.0 - lam) * other
        if alpha == 0 and not hints:
            self.last_terms = {"ce": hard.detach()}
            return hard, logits  # plain cross-entropy: the teacher is not even run
        with torch.no_grad(), t_tap:
            teacher_logits = logits_of(self._teacher()(inputs))
        _check_logits(teacher_logits, "teacher (in eval mode)")
        if teacher_logits.shape != logits.shape:
            raise ConfigError(
                f"teacher logits {tuple(teacher_logits.shape)} and student logits {tuple(logits.shape)} "
                "differ; distil between models with the same classes"
            )
        terms = {"ce": hard}
        loss = hard if alpha == 0 else (1.0 - alpha) * hard
        if alpha > 0:
            terms["kd"] = kd_loss(logits, teacher_logits, self.config.temperature)
            loss = loss + alpha * terms["kd"]
        return self._with_hints(loss, terms, s_tap, t_tap), logits

    def __repr__(self) -> str:
        c = self.config
        return f"DistillationLoss(T={c.temperature}, alpha={c.alpha}, hints={len(c.hints)})"


def distill(
    student: nn.Module,
    teacher: nn.Module,
    train_loader: Any,
    test_loader: Any,
    config: TrainConfig,
    kd: DistillConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    on_epoch_end: EpochCallback | None = None,
    device: str | torch.device = "cpu",
    task: Any = None,
    val_loader: Any = None,
    early_stopping: EarlyStopping | None = None,
) -> TrainResult:
    """Fine-tune ``student`` in place by distillation from ``teacher``; returns the :class:`TrainResult`.

    ``config`` is the usual training recipe (optimizer, schedule, epochs, label smoothing, weight decay);
    ``kd`` the distillation settings. Hint adapters are seeded from ``config.seed`` and sized on one
    test sample. Everything else is :func:`netsculpt.train.train` (checkpoints, resume, DDP, early stopping on
    ``val_loader``). A ``task``
    other than classification distils what it says it matches (``netsculpt.tasks.distill``: per-pixel soft
    targets for segmentation, the head's class logits and box regression for detection); batches of token
    ids distil a causal language model's next-token distributions (``language_modeling``).
    """
    materialised(student, "distil into")  # hint adapters are sized by a student forward
    materialised(teacher, "distil from")  # its forward would draw the teacher's weights at random
    kd = kd or DistillConfig()
    dense = None
    if task is not None:
        from netsculpt.tasks import get_task

        resolved = get_task(task)
        dense = resolved if resolved.name != "classification" else None
    else:  # token batches: a causal LM, distilled token by token (tasks/lm_distill.py)
        dense = language_task(train_loader)
    if dense is not None:
        sizing = {"student": student, "example_inputs": _example_input(test_loader), "seed": config.seed}
        loss = (
            dense.distillation_loss(teacher, kd, **sizing)
            if kd.hints
            else dense.distillation_loss(teacher, kd)
        )
    else:
        example = _example_input(test_loader) if kd.hints else None
        loss = DistillationLoss(
            teacher,
            kd,
            student=student,
            example_inputs=example,
            label_smoothing=config.label_smoothing,
            seed=config.seed,
        )
    return train(
        student,
        train_loader,
        test_loader,
        config,
        out_dir=out_dir,
        resume=resume,
        loss_fn=loss,
        on_epoch_end=on_epoch_end,
        device=device,
        task=dense,
        val_loader=val_loader,
        early_stopping=early_stopping,
    )


def _example_input(loader: Any) -> Tensor:
    """One input of the (unshuffled, unaugmented) test set, read without touching any generator."""
    dataset = getattr(loader, "dataset", None)
    if dataset is not None and len(dataset) > 0:
        sample = dataset[0]
        if isinstance(sample, list | tuple) and isinstance(sample[0], Tensor):
            return sample[0].unsqueeze(0)
    batch = next(iter(loader))
    return batch[0][:1]
