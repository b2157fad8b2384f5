"""`netsculpt distill STUDENT --teacher TEACHER --data NAME --out DIR`: recover a pruned model's accuracy.

Fine-tunes STUDENT (usually the output of `netsculpt prune`) with knowledge distillation from TEACHER
(usually the model it was pruned from), checkpointing every epoch (`--resume` continues), and saves the
student with `netsculpt.io.save`. Under `torchrun --nproc_per_node=N -m netsculpt distill ...` it trains
data-parallel; only rank 0 prints and writes the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from netsculpt.cli.common import add_model_args, check_fits_data, example, forward_or_explain, load_model
from netsculpt.cli.train_cmd import (
    add_bn_l1_arg,
    add_data_args,
    add_schedule_args,
    add_seed_arg,
    add_warmup_arg,
    data_defaults,
    loaders,
    preset_config,
)
from netsculpt.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill", help="fine-tune a (pruned) student by knowledge distillation from a teacher (--resume)"
    )
    add_model_args(p)
    p.add_argument("--teacher", required=True, help="teacher: a saved model directory or a zoo name")
    p.add_argument("--teacher-checkpoint", default=None, help="state dict for a zoo-name teacher")
    add_data_args(p, task=True)
    p.add_argument(
        "--preset", default=None, help="training preset (default: finetune; dense_finetune for --task)"
    )
    add_schedule_args(p)
    add_warmup_arg(p)
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default=None, help="(default: the preset's)")
    p.add_argument(
        "--schedule",
        choices=("cosine", "step", "constant"),
        default=None,
        help="lr schedule (default: the preset's)",
    )
    p.add_argument("--weight-decay", type=float, default=None, help="(default: the preset's)")
    p.add_argument("--label-smoothing", type=float, default=None, help="(default: the preset's)")
    add_seed_arg(p)
    p.add_argument(
        "--shift",
        type=int,
        default=None,
        help="largest random shift in pixels when the preset augments (default: 1/8 of the image side)",
    )
    p.add_argument("--temperature", type=float, default=4.0, help="softmax temperature T (default 4)")
    p.add_argument(
        "--alpha", type=float, default=0.9, help="weight of the distillation term; 1 - alpha on labels"
    )
    p.add_argument(
        "--hint",
        action="append",
        default=[],
        metavar="LAYER[:TEACHER_LAYER]",
        help="feature hint between a student and a teacher layer (repeatable)",
    )
    p.add_argument("--hint-weight", type=float, default=1.0, help="weight of the feature-hint terms")
    p.add_argument(
        "--mixup", type=float, default=0.0, help="in-batch mixup, Beta(m, m) concentration (0: off; 1 common)"
    )
    add_bn_l1_arg(p)
    p.add_argument("--device", default="cpu", help="cpu or cuda (each torchrun rank takes its own GPU)")
    p.add_argument("--out", required=True, help="run directory: checkpoints and the distilled model")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.set_defaults(func=run)


def _teacher_args(args: argparse.Namespace) -> argparse.Namespace:
    teacher = argparse.Namespace(**vars(args))
    teacher.model, teacher.checkpoint = args.teacher, args.teacher_checkpoint
    return teacher


def _hints(specs: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for spec in specs:
        student, _, teacher = spec.partition(":")
        if not student:
            raise ConfigError(f"--hint {spec!r}: give LAYER or STUDENT_LAYER:TEACHER_LAYER")
        pairs.append((student, teacher or student))
    return pairs


def _same_outputs(args: argparse.Namespace, student: Any, teacher: Any, x: Any) -> None:

    what = f"the models cannot take the data's images of shape {tuple(x.shape[1:])}"
    advice = "match them with --resize / --channels, or build the models for that size"
    s_out, t_out = (forward_or_explain(m, x, what, advice) for m in (student, teacher))
    student.eval()  # both left in eval mode, as this check always left them
    teacher.eval()
    if s_out.shape != t_out.shape:
        raise ConfigError(
            f"student {args.model!r} outputs {tuple(s_out.shape)} but teacher {args.teacher!r} outputs "
            f"{tuple(t_out.shape)}; distil between models with the same classes"
        )


def run(args: argparse.Namespace) -> int:
    from netsculpt.io import save
    from netsculpt.tasks.metrics import metric_label
    from netsculpt.train import (
        CHECKPOINT_NAME,
        DistillConfig,
        distill,
        evaluate,
        init_distributed,
    )

    ctx = init_distributed(args.device)
    out = Path(args.out)
    if (out / "checkpoints" / CHECKPOINT_NAME).exists() and not args.resume:
        raise ConfigError(f"{str(out)!r} already holds a distillation run; pass --resume or another --out")
    config = preset_config(
        args,
        "finetune",
        epochs="epochs",
        lr="lr",
        warmup_epochs="warmup_epochs",
        optimizer="optimizer",
        schedule="schedule",
        weight_decay="weight_decay",
        label_smoothing="label_smoothing",
        seed="seed",
        augment_shift="shift",
        batch_size="batch_size",
        bn_l1="bn_l1",
    )
    from netsculpt.cli.task_data import dense_data, is_dense

    dense = None
    if is_dense(args):
        if args.mixup:
            raise ConfigError(f"--mixup mixes two images but not their {args.task} targets: remove it")
        if args.label_smoothing:
            raise ConfigError(f"--label-smoothing is for class labels; the {args.task} loss does not use it")
        args.seed = config.seed
        dense = dense_data(args, batch_size=config.batch_size)
    teacher_args = _teacher_args(args)
    if dense is None:
        data_defaults(args)
        data_defaults(teacher_args)
    import torch

    torch.manual_seed(config.seed)  # a zoo-name student's initial weights too: --seed makes runs repeatable
    student, shape = load_model(args)
    teacher, _ = load_model(teacher_args)
    if dense is None:
        _same_outputs(args, student, teacher, example(shape))
    kd = DistillConfig(
        temperature=args.temperature,
        alpha=args.alpha,
        hints=_hints(args.hint),
        hint_weight=args.hint_weight,
        mixup=args.mixup,
    )
    if dense is not None:  # the recipe runner's canvases and collate; never augmented
        train_loader, test_loader = dense.train_loader, dense.test_loader
        score = dense.score
    else:
        train_loader, test_loader = loaders(
            args, config.batch_size, config.augment, config.seed, config.augment_shift
        )
        check_fits_data(student, test_loader)
        check_fits_data(teacher, test_loader)
        score = lambda model: evaluate(model, test_loader)[0]  # noqa: E731
    before = {}
    if ctx.is_main:
        before = {"teacher": score(teacher), "student": score(student)}
    result = distill(
        student,
        teacher,
        train_loader,
        test_loader,
        config,
        kd,
        out_dir=out / "checkpoints",
        resume=args.resume,
        device=args.device,
        task=dense.task if dense is not None else None,
    )
    if not ctx.is_main:
        return 0
    metric = dense.task.metric if dense is not None else "accuracy"
    extra = {
        "input_shape": list(shape),
        "data": args.data,
        metric: result.final_acc,
        "teacher": args.teacher,
        f"teacher_{metric}": before["teacher"],
        f"{metric}_before_distill": before["student"],
        **({"task": args.task} if dense is not None else {}),
        "distill": kd.to_dict(),
        "train": config.to_dict(),
    }
    save(student.cpu(), out / "model", extra=extra)
    Console().print(
        f"{'' if dense is None else metric_label(metric) + ': '}teacher {before['teacher']:.2%} · "
        f"student before {before['student']:.2%} -> after "
        f"{result.final_acc:.2%} (best epoch {result.best_acc:.2%}); model saved to {out / 'model'}"
    )
    return 0
