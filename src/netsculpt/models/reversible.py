"""Reversible residual blocks: train deep nets with activation memory that does not grow with depth.

A reversible block splits its input's channels into groups and updates them in turn, each from the
previous group's *new* value (RevNet, Gomez et al. 2017; grouped form of RevGNN, Li et al. 2021):

    two groups:  y1 = x1 + F(x2),  y2 = x2 + G(y1)
    C groups:    y0 = x2 + ... + xC,  yi = xi + Fi(y(i-1))   (i = 1..C)

so the inputs can be computed back from the outputs (``xi = yi - Fi(y(i-1))``, last group first). A
:class:`ReversibleSequence` of such blocks keeps only its final output for the backward pass: a custom
autograd function recomputes each block's inputs from its outputs and then that block's gradients, one
block at a time. The price is one extra forward per block; the saved-activation memory of the whole
sequence is one output tensor, whatever the depth.

Three things make the recomputation equal the original forward:

* batch-norm running statistics are snapshotted and put back around each recomputation (a training-mode
  forward updates them; without this every batch would count twice);
* a function that drew random numbers (dropout) gets the generator state it saw in the forward pass
  replayed; the state is stored only for calls that actually changed a generator;
* the autocast state of the forward is re-entered for the recomputation;
* parameters are handed to the autograd function, so gradients also reach ``torch.autograd.grad`` and
  a module used in several blocks (weight tying) receives the sum of its uses.

Without grad (evaluation, ``torch.no_grad``, netsculpt's tracer) the sequence runs as plain PyTorch ops
(``chunk``, the blocks, ``cat``), which is what pruning and export see.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from netsculpt.errors import ConfigError

Halves = list[torch.Tensor]


class ReversibleBlock(nn.Module):
    """Channel groups updated in turn by ``fns`` (``ReversibleBlock(F, G)`` is RevNet's block).

    Each ``fns[i]`` must map a tensor of one group's shape to the same shape. The block is its own
    inverse given the functions: :meth:`inverse` recovers the inputs from the outputs.
    """

    def __init__(self, *fns: nn.Module) -> None:
        super().__init__()
        if len(fns) < 2:
            raise ConfigError(f"a reversible block needs at least 2 functions (groups), got {len(fns)}")
        self.fns = nn.ModuleList(fns)

    @property
    def groups(self) -> int:
        return len(self.fns)

    def forward_groups(self, xs: Halves) -> Halves:
        prev = _sum(xs[1:])
        ys = []
        for x, fn in zip(xs, self.fns):
            prev = x + fn(prev)
            ys.append(prev)
        return ys

    def inverse_groups(self, ys: Halves) -> Halves:
        xs: list[torch.Tensor | None] = [None] * len(ys)
        for i in range(len(ys) - 1, 0, -1):
            xs[i] = ys[i] - self.fns[i](ys[i - 1])
        xs[0] = ys[0] - self.fns[0](_sum(xs[1:]))  # type: ignore[arg-type]
        return xs  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.forward_groups(_split(x, self.groups)), dim=1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.inverse_groups(_split(y, self.groups)), dim=1)


class ReversibleSequence(nn.Module):
    """Reversible blocks run back to back without storing their activations.

    ``blocks`` may repeat a block object (weight tying: RevGNN's weight-tied variant); its parameters are
    then shared and get the sum of the gradients of every use. ``memory_saving=False`` runs ordinary
    autograd (the "ordinary twin" of benchmarks and tests). ``preserve_rng=False`` skips the generator
    checks when no block is random (a small saving; a random block then gets wrong gradients).
    """

    def __init__(
        self, blocks: Sequence[ReversibleBlock], *, memory_saving: bool = True, preserve_rng: bool = True
    ) -> None:
        super().__init__()
        if not blocks:
            raise ConfigError("a ReversibleSequence needs at least one block")
        groups = {b.groups for b in blocks}
        if len(groups) != 1 or not all(isinstance(b, ReversibleBlock) for b in blocks):
            raise ConfigError(
                "every block of a ReversibleSequence must be a ReversibleBlock with equal groups"
            )
        self.blocks = nn.ModuleList(blocks)
        self.groups = groups.pop()
        self.memory_saving = memory_saving
        self.preserve_rng = preserve_rng

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = [p for p in _unique_params(self.blocks) if p.requires_grad]
        # a torch.fx Proxy is not a Tensor: symbolic tracing takes the plain path; so does a forward in
        # which a block's module is hooked (explain, push loss, distillation hints, PKKD taps read its
        # output and need its autograd graph, which the memory-saving path recomputes only in backward)
        plain = (
            not isinstance(x, torch.Tensor)
            or not self.memory_saving
            or not torch.is_grad_enabled()
            or _hooked(self.blocks)
        )
        if plain or not (params or x.requires_grad):
            xs = _split(x, self.groups)
            for block in self.blocks:
                xs = block.forward_groups(xs)
            return torch.cat(xs, dim=1)
        return _ReversibleFunction.apply(x, self, *params)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, memory_saving={self.memory_saving}"


def _hooked(module: nn.Module) -> bool:
    """Any forward (pre-)hook on ``module`` or inside it, or a global module hook."""
    from torch.nn.modules import module as torch_module

    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


class _RngLog:
    """Generator states before the calls that drew random numbers, keyed by call index."""

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.enabled = enabled
        self.states: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def get(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return torch.get_rng_state(), (torch.cuda.get_rng_state(self.device) if self.cuda else None)

    def call(self, index: int, fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return fn(x)
        before = self.get()
        out = fn(x)
        after = self.get()
        if not torch.equal(before[0], after[0]) or (
            before[1] is not None and not torch.equal(before[1], after[1])  # type: ignore[arg-type]
        ):
            self.states[index] = before
        return out

    @contextmanager
    def replay(self, index: int):
        state = self.states.get(index)
        if state is None:
            yield
            return
        devices = [self.device] if self.cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(state[0])
            if self.cuda:
                torch.cuda.set_rng_state(state[1], self.device)  # type: ignore[arg-type]
            yield


@contextmanager
def _buffers_kept(module: nn.Module):
    """Put every buffer of ``module`` back afterwards (BN running stats of a recomputed forward)."""
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)


class _ReversibleFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, seq: ReversibleSequence, *params: torch.Tensor) -> torch.Tensor:
        rng = _RngLog(x.device, seq.preserve_rng)
        with torch.no_grad():
            xs = _split(x.detach(), seq.groups)
            index = 0
            for block in seq.blocks:
                prev = _sum(xs[1:])
                ys = []
                for xi, fn in zip(xs, block.fns):
                    prev = xi + rng.call(index, fn, prev)
                    ys.append(prev)
                    index += 1
                xs = ys
            y = torch.cat(xs, dim=1)
        ctx.seq, ctx.rng, ctx.params = seq, rng, params
        kind = x.device.type
        ctx.autocast = (kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (y,) = ctx.saved_tensors
        seq: ReversibleSequence = ctx.seq
        rng: _RngLog = ctx.rng
        grads: dict[int, torch.Tensor] = {}
        ys = [t.detach() for t in y.chunk(seq.groups, dim=1)]
        dys = [t.contiguous() for t in dy.chunk(seq.groups, dim=1)]
        index = sum(b.groups for b in seq.blocks)
        kind, enabled, dtype = ctx.autocast
        with torch.autocast(kind, dtype=dtype, enabled=enabled):  # recompute as the forward computed
            for block in reversed(seq.blocks):
                index -= block.groups
                ys, dys = _block_backward(block, ys, dys, rng, index, grads)
        dx = torch.cat(dys, dim=1)
        param_grads = [grads.get(id(p)) for p in ctx.params]
        return (dx, None, *param_grads)


def _block_backward(
    block: ReversibleBlock, ys: Halves, dys: Halves, rng: _RngLog, first: int, grads: dict[int, torch.Tensor]
) -> tuple[Halves, Halves]:
    """Recompute one block's inputs from its outputs and turn output grads into input grads."""
    n = block.groups
    xs: list[torch.Tensor | None] = [None] * n
    dys = list(dys)
    for i in range(n - 1, -1, -1):
        fn = block.fns[i]
        if i > 0:
            arg = ys[i - 1]
        else:
            arg = _sum(xs[1:])  # type: ignore[arg-type]
        arg = arg.detach().requires_grad_(True)
        fparams = [p for p in fn.parameters() if p.requires_grad]
        with _buffers_kept(fn):  # restored after the grad: batch_norm's backward checks their version
            with torch.enable_grad(), rng.replay(first + i):
                out = fn(arg)
            got = torch.autograd.grad(out, [arg, *fparams], dys[i], allow_unused=True)
        with torch.no_grad():
            xs[i] = ys[i] - out.detach()
        d_arg = got[0]
        for p, g in zip(fparams, got[1:]):
            if g is not None:
                grads[id(p)] = grads[id(p)] + g if id(p) in grads else g
        if d_arg is None:
            continue
        if i > 0:
            dys[i - 1] = dys[i - 1] + d_arg
        else:
            for k in range(1, n):
                dys[k] = dys[k] + d_arg
    return xs, dys  # type: ignore[return-value]


def _split(x: torch.Tensor, groups: int) -> Halves:
    """``chunk`` along channels, indexed rather than iterated so torch.fx can trace it."""
    if isinstance(x, torch.Tensor) and (x.dim() < 2 or x.shape[1] % groups):  # an fx Proxy is not checked
        raise ConfigError(
            f"a reversible block with {groups} groups splits its input's channels (dim 1) evenly; got shape "
            f"{tuple(x.shape)}: use a channel count divisible by {groups}"
        )
    parts = x.chunk(groups, dim=1)
    return [parts[i] for i in range(groups)]


def _sum(ts: Iterable[torch.Tensor]) -> torch.Tensor:
    ts = list(ts)
    total = ts[0]
    for t in ts[1:]:
        total = total + t
    return total


def _unique_params(module: nn.Module) -> list[nn.Parameter]:
    return list(module.parameters())  # parameters() already skips repeats (weight tying)
