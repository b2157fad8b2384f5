"""Worker for the distributed tests, launched by torchrun with 2 processes on 127.0.0.1.

Usage: torchrun --nproc_per_node=2 _ddp_worker.py OUT_DIR. Every rank runs the same scenarios through
the ordinary ``train()`` / ``distill()`` entry points; rank 0 saves the weights each produced (the test
compares them with single-process runs) and every rank writes ``rank{R}.json`` with what it observed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _ddp_cases as cases

import netsculpt.train.run as loop  # the epoch loop calls save_checkpoint from there
from netsculpt.train import init_distributed, train


def _save(path: Path, *modules: nn.Module) -> None:
    tensors = {}
    for i, module in enumerate(modules):
        tensors.update({f"{i}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    save_file(tensors, str(path))


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    ctx = init_distributed()
    assert ctx.world_size == 2, ctx
    saves: list[int] = []
    real_save = loop.save_checkpoint

    def counting_save(path, payload):
        saves.append(int(payload["epoch"]))
        return real_save(path, payload)

    loop.save_checkpoint = counting_save
    main_rank = ctx.is_main

    # 1. one optimizer step: each rank gets half of the single batch
    model = cases.plain_model()
    train(model, *cases.one_batch_loaders(), cases.ONE_STEP)
    if main_rank:
        _save(out / "one_step.safetensors", model)

    # 2. several steps over two epochs, unshuffled data, momentum and weight decay
    model = cases.plain_model()
    train(model, *cases.ordered_loaders(), cases.MULTI_STEP)
    if main_rank:
        _save(out / "multi_step.safetensors", model)

    # 3. distillation with a hint adapter: the adapter's gradients must be averaged across ranks too
    student, teacher = cases.kd_student(), cases.kd_teacher()
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    kd_loss = cases.kd_loss(student, teacher)
    result = train(student, *cases.ordered_loaders(), cases.MULTI_STEP, loss_fn=kd_loss)
    if main_rank:
        _save(out / "kd.safetensors", student, kd_loss.learnable)

    # 4. resume: an interrupted run, resumed by a fresh train() call, ends where an uninterrupted one does
    straight = cases.noisy_model()
    train(straight, *cases.noisy_loaders(), cases.RESUME, out_dir=out / "straight")
    interrupted = cases.noisy_model()
    train(
        interrupted,
        *cases.noisy_loaders(),
        cases.RESUME,
        out_dir=out / "resumed",
        on_epoch_end=lambda record: record["epoch"] == 1,
    )
    resumed = cases.noisy_model(seed=99)
    torch.manual_seed(1000 + ctx.rank)  # scramble every rank's stream: it must come from the checkpoint
    resumed_result = train(
        resumed, *cases.noisy_loaders(), cases.RESUME, out_dir=out / "resumed", resume=True
    )
    same = all(
        torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values())
    )

    report = {
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "saves": saves,
        "kd_epochs": result.epochs_run,
        "resumed_from": resumed_result.resumed_from,
        "resume_bitwise_equal": same,
        "history_epochs": [h["epoch"] for h in resumed_result.history],
        "teacher_training": teacher.training,
        "teacher_grads": [p.grad is not None for p in teacher.parameters()],
        "teacher_unchanged": all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items()),
    }
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
