"""Read (and scale) one layer's feature maps during a forward pass, leaving nothing behind afterwards.

Interpretation maps need a layer's output ``A`` (N, C, *spatial) and the gradient of a class score with
respect to it. Both come from a forward hook that is registered only inside a ``with`` block: on exit
(also after an error) every hook is removed, the model's train/eval mode and the ``requires_grad`` of
its parameters are as they were, and no ``.grad`` is written into its parameters (gradients are taken
with ``torch.autograd.grad`` with respect to the captured maps only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from netsculpt.checks import materialised
from netsculpt.errors import ConfigError, a_type
from netsculpt.modes import module_modes, restore_modes


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called ``name``; a clear error listing candidates when there is none."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    convs = conv_layers(model)
    hint = ", ".join(convs[:12]) + (" ..." if len(convs) > 12 else "")
    raise ConfigError(
        f"the model has no layer {name!r}; pass a module name as printed by `netsculpt analyze`, e.g. "
        f"one of its conv layers: {hint or '(none found)'}"
    )


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the 2-D conv layers, in definition order (the candidates for spatial maps)."""
    from netsculpt.adder.layer import AdderConv2d

    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | AdderConv2d)]


def default_layer(model: nn.Module, shape: tuple[int, ...] | None = None) -> str:
    """The last conv layer: the usual Grad-CAM choice (most class-specific maps that are still spatial).
    With an input ``shape``, the last one that runs in an eval forward (training-only heads excluded)."""
    from netsculpt.explain.run_order import ran_convs, run_order

    convs = ran_convs(model, run_order(model, shape)) if shape is not None else conv_layers(model)
    if not convs:
        raise ConfigError(
            "the model has no Conv2d layer to draw spatial maps from; pass --layers with a module whose "
            "output is (N, C, H, W)"
        )
    return convs[-1]


def _first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ConfigError(f"the layer's output is {a_type(output)}, not a tensor: choose another layer")


@contextmanager
def restored(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block on ``model`` in eval mode; mode, ``requires_grad`` flags and ``.grad`` are restored."""
    materialised(model, "explain")  # every explain forward runs in here: it would create lazy weights
    modes = module_modes(model)
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    model.eval()
    try:
        yield model
    finally:
        restore_modes(modes)
        for p, flag, grad in zip(params, flags, grads):
            p.requires_grad_(flag)
            p.grad = grad


@contextmanager
def capture(
    model: nn.Module, layers: Sequence[str], scales: dict[str, torch.Tensor] | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, each forward pass stores ``layers``' outputs (first call of each) in the yielded
    dict; ``scales[name]`` (shape (C,) or (B, C)) multiplies that layer's channels on the way out.

    Hooks are removed on exit, whatever happens inside.
    """
    store: dict[str, torch.Tensor] = {}
    handles = []

    def make(name: str) -> Callable:
        def hook(_module: nn.Module, _args: Any, output: Any) -> Any:
            if name in store:  # a module called twice: the first call is the one explained
                return None
            t = _first_tensor(output)
            scale = (scales or {}).get(name)
            if scale is not None:
                shape = (*scale.shape, *([1] * (t.dim() - scale.dim())))
                if scale.dim() == 1:
                    shape = (1, *shape)
                t = t * scale.reshape(shape).to(t)
                output = t if isinstance(output, torch.Tensor) else (t, *output[1:])
            store[name] = t
            return output if scale is not None else None

        return hook

    try:
        for name in dict.fromkeys(layers):
            handles.append(find_layer(model, name).register_forward_hook(make(name)))
        yield store
    finally:
        for h in handles:
            h.remove()


def forward_with_maps(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[str],
    scales: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and the layers' maps for ``images``; the maps are differentiable w.r.t. nothing but the
    input path (the caller takes ``torch.autograd.grad`` of a score w.r.t. them)."""
    with capture(model, layers, scales) as store:
        x = images.detach().clone().requires_grad_(True)  # a graph through the maps even if params are frozen
        logits = model(x)
    missing = [n for n in layers if n not in store]
    if missing:
        raise ConfigError(
            f"layer(s) {missing} did not run in the forward pass; choose layers the model calls"
        )
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ConfigError(
            "interpretation maps need a classifier: the model must return logits of shape (N, classes), "
            f"got {type(logits).__name__} {tuple(getattr(logits, 'shape', ()))}"
        )
    for name, t in store.items():
        if t.dim() != 4:
            raise ConfigError(
                f"layer {name!r} outputs shape {tuple(t.shape)}, not (N, C, H, W): choose a conv layer "
                "(or its activation) for a spatial map"
            )
    return logits, store
