"""Distributed data-parallel training: the same ``train()`` call, launched N times by ``torchrun``.

``torchrun`` starts one process per device and tells each its ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE`` through the environment; :func:`init_distributed` reads them and joins the process group
(gloo on CPU, NCCL on GPU). Training then keeps one rule: every rank holds the same model, optimizer and
history at every step boundary, so any rank could write the checkpoint, and rank 0 alone does.

``config.batch_size`` stays the *global* batch: each of N ranks loads ``batch_size / N`` samples, so a
recipe means the same thing on one process or on eight, and one optimizer step over N ranks equals one
single-process step on the whole batch (DDP averages the ranks' gradients).
"""

from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

from netsculpt.errors import ConfigError

SHUTDOWN_BARRIER_S = 60  # how long a rank waits at exit for its peers before leaving anyway


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job: rank 0 of 1 when not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the environment describes a job of more than one process (``torchrun`` sets it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def current_context() -> DistContext:
    """The context of an already initialised process group, or the single-process one."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    world = dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return DistContext(dist.get_rank(), world, local, str(dist.get_backend()))


def init_distributed(device: str | torch.device = "cpu", backend: str | None = None) -> DistContext:
    """Join the process group ``torchrun`` describes (once), or return the single-process context.

    The backend defaults to NCCL when training on CUDA and gloo otherwise. A group the caller already
    initialised is used as it is. A group created here is destroyed when the process exits.
    """
    if dist.is_available() and dist.is_initialized():
        return current_context()
    if not launched_by_torchrun():
        return DistContext()
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed support")
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE is set but {', '.join(missing)} are not: launch with torchrun "
            "(e.g. `torchrun --nproc_per_node=2 -m netsculpt train ...`), which sets all of them"
        )
    on_cuda = torch.device(device).type == "cuda"
    if on_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend=backend or ("nccl" if on_cuda else "gloo"))
    atexit.register(shutdown)
    return current_context()


def shutdown() -> None:
    """Leave the process group (safe to call twice, or when there is none).

    The ranks first meet at a barrier: a rank that tears its gloo connections down while a peer is still
    using them makes that peer's transport thread abort the process ("terminate called without an
    active exception", seen in about one run in six). The barrier is bounded, so a rank whose peer has
    already died still exits."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=SHUTDOWN_BARRIER_S))
        else:
            dist.barrier()
    except Exception:  # a peer that is already gone leaves nothing to wait for
        pass
    dist.destroy_process_group()


def rank_device(ctx: DistContext, device: str | torch.device) -> torch.device:
    """``cuda`` without an index means this rank's own GPU (``cuda:LOCAL_RANK``)."""
    device = torch.device(device)
    if ctx.distributed and device.type == "cuda" and device.index is None:
        return torch.device("cuda", ctx.local_rank)
    return device


def wrap_model(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` (it broadcasts rank 0's weights on construction)."""
    if device.type == "cuda":
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``, without the padding DistributedSampler adds.

    For evaluation: each sample is scored exactly once across ranks, so the summed counts are exact.
    """

    def __init__(self, length: int, ctx: DistContext) -> None:
        self.indices = range(ctx.rank, length, ctx.world_size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _loader_options(loader: DataLoader) -> dict[str, Any]:
    options: dict[str, Any] = {
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "drop_last": loader.drop_last,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "persistent_workers": loader.persistent_workers,
    }
    if loader.num_workers > 0:
        options["prefetch_factor"] = loader.prefetch_factor
    return options


def shard_train_loader(loader: Any, ctx: DistContext, seed: int) -> Any:
    """This rank's part of ``loader``: a DistributedSampler and ``batch_size / world_size`` per batch.

    A loader that already uses a DistributedSampler is returned as it is (its batch size is then the
    per-rank one). The dataset's own generator (augmentation) is re-seeded per rank so ranks do not
    repeat each other's random shifts.
    """
    if not isinstance(loader, DataLoader) or isinstance(loader.sampler, DistributedSampler):
        return loader
    batch = loader.batch_size
    if batch is None:
        raise ConfigError(
            "distributed training needs a DataLoader with a batch_size (not a custom batch_sampler); "
            "or give it a torch.utils.data.DistributedSampler yourself"
        )
    if batch % ctx.world_size:
        raise ConfigError(
            f"the global batch size {batch} does not split evenly over {ctx.world_size} processes; "
            f"use a batch size divisible by {ctx.world_size}"
        )
    sampler = DistributedSampler(
        loader.dataset,
        num_replicas=ctx.world_size,
        rank=ctx.rank,
        shuffle=isinstance(loader.sampler, RandomSampler),
        seed=seed,
        drop_last=loader.drop_last,
    )
    gen = getattr(loader.dataset, "generator", None)
    if isinstance(gen, torch.Generator):
        gen.manual_seed(gen.initial_seed() + ctx.rank)
    return DataLoader(
        loader.dataset,
        batch_size=batch // ctx.world_size,
        sampler=sampler,
        generator=torch.Generator().manual_seed(seed + ctx.rank),  # worker seeds; keeps torch's stream
        **_loader_options(loader),
    )


def shard_eval_loader(loader: Any, ctx: DistContext) -> Any:
    """This rank's share of the test set (each sample once across ranks), same batch size."""
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        return loader
    options = _loader_options(loader)
    options["drop_last"] = False
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=ShardSampler(len(loader.dataset), ctx),
        **options,
    )


def set_epoch(loader: Any, epoch: int) -> None:
    """Give a DistributedSampler its epoch: each epoch then shuffles differently, reproducibly."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)


def all_reduce_sum(values: list[float], ctx: DistContext, device: torch.device) -> list[float]:
    """Sum a few numbers over all ranks (float64, so counts stay exact)."""
    if not ctx.distributed:
        return list(values)
    reduce_device = device if ctx.backend == "nccl" else torch.device("cpu")
    tensor = torch.tensor(values, dtype=torch.float64, device=reduce_device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def average_gradients(params: list[nn.Parameter], ctx: DistContext) -> None:
    """Average gradients of parameters DDP does not own (a loss's hint adapters), in one all-reduce."""
    grads = [p.grad for p in params if p.grad is not None]
    if not ctx.distributed or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_tensors(module: nn.Module, ctx: DistContext, *, buffers_only: bool = False) -> None:
    """Copy rank 0's parameters and buffers (or buffers only) into every rank's ``module``."""
    if not ctx.distributed:
        return
    with torch.no_grad():
        tensors = list(module.buffers()) if buffers_only else [*module.parameters(), *module.buffers()]
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank (pickled over the process group, never read from a file)."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
