"""Peak activation memory of one inference forward, measured rather than estimated.

A ``TorchDispatchMode`` sees every tensor each aten op returns. The storages behind them are tracked
with weakref finalizers, so a storage counts from the op that created it until CPython frees it: the
peak is the largest total of simultaneously live activation storages. Parameters, buffers and the
inputs are excluded (they exist before and after the forward): an op output that aliases an
argument's storage not already being tracked is a view of, or an in-place write to, memory that
existed before. Views share their base's storage and so are never counted twice. Scratch memory a
kernel allocates and frees internally is invisible here.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from netsculpt.graph.snapshot import left_as_found
from netsculpt.measure._inputs import ExampleInputs, as_tuple, check_module, run_forward
from netsculpt.modes import eval_mode


def _storage(tensor: torch.Tensor) -> torch.UntypedStorage | None:
    """The tensor's storage, or None for layouts without one (sparse, mkldnn, nested)."""
    try:
        return tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None


def _argument_storages(args: tuple, kwargs: dict) -> set[int]:
    keys = set()
    for leaf in tree_flatten((args, kwargs))[0]:
        if isinstance(leaf, torch.Tensor) and (storage := _storage(leaf)) is not None:
            keys.add(storage.data_ptr())
    return keys


class _LiveStorageTracker(TorchDispatchMode):
    """Keeps the running and peak byte totals of storages created under the mode."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.finalizers: list[weakref.finalize] = []
        self.current = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        leaves, _ = tree_flatten(out)
        preexisting: set[int] | None = None
        for leaf in leaves:
            if not isinstance(leaf, torch.Tensor):
                continue
            storage = _storage(leaf)
            if storage is None or storage.nbytes() == 0:
                continue
            key = storage.data_ptr()
            if key in self.live:
                continue
            if preexisting is None:
                preexisting = _argument_storages(args, kwargs)
            if key in preexisting:
                continue
            self.live[key] = storage.nbytes()
            self.current += storage.nbytes()
            self.finalizers.append(weakref.finalize(storage, self._free, key))
        self.peak = max(self.peak, self.current)
        return out

    def close(self) -> None:
        """Stop listening for frees: the finalizers must not outlive the measurement."""
        for finalizer in self.finalizers:
            finalizer.detach()
        self.finalizers.clear()


def peak_activation_bytes(model: nn.Module, example_inputs: ExampleInputs) -> int:
    """Largest number of bytes of intermediate tensors alive at once in a no-grad eval forward.

    The model's output is an activation too, so it counts while it is alive. The number depends on
    how the forward is written (in-place ops, when Python drops references), which is the point:
    it is what this model, run this way, actually holds. What the forward writes into the model is put
    back afterwards.
    """
    check_module(model, "measure the activation memory of", "measure it")
    inputs = as_tuple(example_inputs)
    tracker = _LiveStorageTracker()
    try:
        with (
            left_as_found(model, "while its memory was measured"),
            eval_mode(model),
            torch.no_grad(),
            tracker,
        ):
            output = run_forward(model, inputs)
            del output
    finally:
        tracker.close()
    return tracker.peak
