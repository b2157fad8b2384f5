"""`netsculpt adder MODEL --data NAME --out DIR [--pkkd]`: convert a CNN to an adder network and train it.

The convolutions (except ``--keep``, by default the first and last weight layer) become adder layers with
batch norm, then the model trains with the preset (checkpoint every epoch, ``--resume`` continues),
from labels or with PKKD (a CNN teacher of the same architecture trained alongside). The saved model
records the conversion, so `netsculpt eval` / ``ns.load`` rebuild it.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from rich.console import Console

from netsculpt.cli.common import add_model_args, check_fits_data, example, load_model
from netsculpt.cli.train_cmd import (
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
    p = sub.add_parser("adder", help="convert a CNN's convs to AdderNet layers and train (optionally PKKD)")
    add_model_args(p)
    add_data_args(p)
    p.add_argument(
        "--keep",
        action="append",
        default=None,
        metavar="LAYER",
        help="layer kept multiplicative: first, last or a module name (repeatable; default first, last)",
    )
    p.add_argument(
        "--eta", type=float, default=0.2, help="adaptive learning-rate scale of adder filters (0.2)"
    )
    p.add_argument("--pkkd", action="store_true", help="train with progressive kernel-based distillation")
    p.add_argument(
        "--teacher-init",
        choices=("model", "scratch"),
        default="model",
        help="PKKD teacher starts from MODEL's weights or from a fresh init (default model)",
    )
    p.add_argument(
        "--copy-filters",
        action="store_true",
        help="adder filters start as MODEL's conv filters (with an untrained MODEL and --pkkd, student and "
        "teacher start from one network, so the kernel loss compares corresponding channels)",
    )
    p.add_argument("--alpha", type=float, default=0.5, help="PKKD weight of the logit distillation term")
    p.add_argument("--beta", type=float, default=1.0, help="PKKD weight of the kernel feature term")
    p.add_argument("--temperature", type=float, default=4.0, help="PKKD softmax temperature")
    p.add_argument(
        "--mutual",
        type=float,
        default=0.0,
        help="PKKD: weight of the teacher's own distillation towards the student's soft labels (0: off)",
    )
    p.add_argument(
        "--ramp-epochs",
        type=float,
        default=5.0,
        help="PKKD: distillation weights rise from 0 over these epochs (the teacher starts untrained)",
    )
    p.add_argument("--preset", default="lenet5_mnist5k", help="training preset (default lenet5_mnist5k)")
    add_schedule_args(p)
    add_warmup_arg(p)
    add_seed_arg(p)
    p.add_argument("--out", required=True, help="run directory: checkpoints and the adder model")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.set_defaults(func=run)  # fmt: skip


def _reset(model) -> None:
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def run(args: argparse.Namespace) -> int:
    import torch

    from netsculpt.adder import PKKDLoss, count_ops, to_adder
    from netsculpt.io import save
    from netsculpt.train import CHECKPOINT_NAME, evaluate, train

    out = Path(args.out)
    if (out / "checkpoints" / CHECKPOINT_NAME).exists() and not args.resume:
        raise ConfigError(f"{str(out)!r} already holds an adder run; pass --resume or another --out")
    if args.copy_filters and args.pkkd and args.teacher_init == "scratch":
        raise ConfigError(
            "--copy-filters with --teacher-init scratch: the re-initialised teacher would not share the "
            "student's start; use --teacher-init model (with an untrained MODEL) or drop --copy-filters"
        )
    data_defaults(args)
    config = preset_config(args, epochs="epochs", lr="lr", warmup_epochs="warmup_epochs", seed="seed")
    # seeded before the CNN is built: a zoo model's init is the PKKD teacher's and --copy-filters' start,
    # so two runs with one --seed were not the same run (9.4 vs 14.8 % after an epoch)
    torch.manual_seed(config.seed)
    cnn, shape = load_model(args)
    keep = args.keep if args.keep is not None else ["first", "last"]
    ann = to_adder(cnn, keep=keep, eta=args.eta, copy_filters=args.copy_filters)
    train_loader, test_loader = loaders(
        args, config.batch_size, config.augment, config.seed, config.augment_shift
    )
    check_fits_data(cnn, train_loader)  # one line naming --resize / --channels, not a matmul error
    loss_fn = None
    if args.pkkd:
        teacher = copy.deepcopy(cnn)
        if args.teacher_init == "scratch":
            _reset(teacher)
        loss_fn = PKKDLoss(ann, teacher, alpha=args.alpha, temperature=args.temperature, beta=args.beta,
                           ramp_steps=round(args.ramp_epochs * len(train_loader)), mutual=args.mutual,
                           label_smoothing=config.label_smoothing)  # fmt: skip
    result = train(ann, train_loader, test_loader, config, loss_fn=loss_fn, out_dir=out / "checkpoints",
                   resume=args.resume)  # fmt: skip
    ann.eval()
    ops = count_ops(ann, example(shape))
    extra = {
        "input_shape": list(shape), "data": args.data, "accuracy": result.final_acc,
        "adder": {"pkkd": args.pkkd, "mults": ops.mults, "adds": ops.adds, "energy_uj_fp32": ops.energy_uj()},
        "train": config.to_dict(),
    }  # fmt: skip
    if loss_fn is not None:
        extra["adder"]["teacher_accuracy"] = evaluate(loss_fn.teacher, test_loader)[0]
    save(ann.cpu(), out / "model", extra=extra)
    Console().print(
        f"adder model test accuracy {result.final_acc:.2%}; {ops.mults:,} mults, {ops.adds:,} adds "
        f"(~{ops.energy_uj():.2f} uJ fp32, Horowitz 2014); saved to {out / 'model'}"
    )
    return 0
