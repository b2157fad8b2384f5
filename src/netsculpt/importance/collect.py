"""One streaming pass over calibration data, handing each group's feature maps (and gradients) to
criteria as they are produced, so memory stays bounded by one batch.

A criterion implements ``on_activation`` (and ``on_gradient`` if it needs gradients); the collector
registers forward hooks on every site module and, when gradients are needed, tensor hooks on the site
outputs, then runs forward (and backward on the task loss) batch by batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import nn

from netsculpt.errors import NetsculptError, PruningError
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.base import LABELS as _LABELS
from netsculpt.importance.calib_checks import check_labels, check_logits, first_batch_error
from netsculpt.importance.sites import Site, find_sites, preferred_sites
from netsculpt.logits import logits_of
from netsculpt.modes import eval_mode
from netsculpt.progress import track


class StreamingStatistic(Protocol):
    """What a data-driven criterion receives during the pass."""

    needs_gradients: bool

    def on_activation(self, group: ChannelGroup, site: Site, x: torch.Tensor, labels: torch.Tensor) -> None:
        """``x``: the group's channels at one site for one batch, shape (N, C, *rest)."""

    def on_gradient(
        self, group: ChannelGroup, site: Site, x: torch.Tensor, grad: torch.Tensor, labels: torch.Tensor
    ) -> None:
        """``grad``: d loss / d x at that site for the same batch."""


def group_sites(model: nn.Module, graph: ChannelGraph, all_sites: bool = False) -> dict[str, list[Site]]:
    """Preferred observation sites for every prunable group; a group with none is an error."""
    out: dict[str, list[Site]] = {}
    for g in graph.prunable_groups:
        sites = find_sites(model, graph, g)
        if not sites:
            raise PruningError(
                f"group {g.id!r}: its channels are never the output of a single module, so a data-driven "
                "criterion cannot observe them; use a weight criterion (l1, l2, fpgm, bn_scale) or "
                f"ignored=[{g.id!r}]"
            )
        out[g.id] = sites if all_sites else preferred_sites(sites)
    return out


def _split_batch(batch: Any) -> tuple[tuple, torch.Tensor | None]:
    if isinstance(batch, dict):
        inputs, labels = batch.get("inputs", batch.get("image")), batch.get("labels", batch.get("label"))
        return (inputs,), labels
    if isinstance(batch, tuple | list) and len(batch) == 2:
        inputs, labels = batch
        return (tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)), labels
    if isinstance(batch, torch.Tensor):
        return (batch,), None
    raise PruningError("calibration data must yield (inputs, labels) batches, e.g. a DataLoader of a dataset")


def stream(
    model: nn.Module,
    graph: ChannelGraph,
    stat: StreamingStatistic,
    data: Iterable[Any],
    *,
    max_batches: int | None = None,
    sites: dict[str, list[Site]] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    description: str = "calibration",
    task: Any = None,
) -> int:
    """Run the pass; returns the number of samples seen. Every module is left in its own original
    mode (a frozen BatchNorm inside a training model stays frozen) and every ``.grad`` as it was.

    With a ``task`` (``netsculpt.tasks``) its batches, forward call and loss are used: a detector is
    called on a list of images, and gradients come from its own losses (``task.calibration_loss``).
    """
    sites = sites if sites is not None else group_sites(model, graph)
    groups = {g.id: g for g in graph.groups}
    by_module: dict[str, list[tuple[ChannelGroup, Site]]] = {}
    for gid, ss in sites.items():
        for s in ss:
            by_module.setdefault(s.module, []).append((groups[gid], s))
    modules = dict(model.named_modules())
    current: dict[str, torch.Tensor | None] = {"labels": None}
    calls: dict[str, int] = {}

    def make_hook(name: str, entries: list[tuple[ChannelGroup, Site]]) -> Callable:
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            call = calls.get(name, 0)
            calls[name] = call + 1
            for group, site in entries:
                if site.call != call:
                    continue
                x = site.channels(output)
                stat.on_activation(group, site, x.detach(), current["labels"])
                if stat.needs_gradients:
                    t = output[site.output_index] if isinstance(output, tuple | list) else output
                    t.register_hook(_grad_hook(group, site, x.detach()))

        return hook

    def _grad_hook(group: ChannelGroup, site: Site, x: torch.Tensor) -> Callable:
        def on_grad(grad: torch.Tensor) -> None:
            stat.on_gradient(group, site, x, site.channels(grad).detach(), current["labels"])

        return on_grad

    handles = [modules[n].register_forward_hook(make_hook(n, entries)) for n, entries in by_module.items()]
    seen = 0
    default_loss = loss_fn is None
    loss_fn = loss_fn or nn.functional.cross_entropy
    inputs: tuple = ()
    with eval_mode(model), grads_kept(model):  # each module's flag and every .grad come back
        try:
            batches = data if max_batches is None else _take(data, max_batches)
            total = (
                max_batches if max_batches is not None else (len(data) if hasattr(data, "__len__") else None)
            )
            for batch in track(batches, description, total=total):
                if task is None and default_loss and seen == 0:
                    task = language_task_for(batch, stat)
                if task is not None:
                    seen += _task_batch(model, task, batch, stat.needs_gradients, current, calls)
                    continue
                inputs, labels = _split_batch(batch)
                per_image = _LABELS in getattr(stat, "needs", ()) and not stat.needs_gradients  # hrel, gpp
                if seen == 0 and labels is not None and per_image:
                    check_labels(labels, type(stat).__name__)
                current["labels"] = labels
                calls.clear()
                if stat.needs_gradients:
                    if labels is None:
                        raise PruningError(
                            "this criterion needs labels: calibration batches must be (inputs, labels)"
                        )
                    model.zero_grad(set_to_none=True)
                    with torch.enable_grad():
                        output = model(*inputs)
                        if default_loss:  # a Hugging Face ModelOutput: cross-entropy on its logits
                            output = logits_of(output)
                            if seen == 0:
                                check_logits(output, labels)
                        loss_fn(output, labels).backward()
                    model.zero_grad(set_to_none=True)
                else:
                    with torch.no_grad():
                        model(*inputs)
                seen += int(inputs[0].shape[0])
        except NetsculptError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            if seen or task is not None:
                raise
            raise first_batch_error(exc, inputs) from exc
        finally:
            for h in handles:
                h.remove()
    if seen == 0:
        raise PruningError("the calibration data yielded no batches")
    return seen


@contextmanager
def grads_kept(model: nn.Module) -> Iterator[None]:
    """Put back every parameter's ``.grad`` after calibration's backward passes: a user's accumulated
    gradients (or the None they chose) are theirs, and calibration must not consume or leave any."""
    saved = [(p, p.grad) for p in model.parameters()]
    try:
        yield
    finally:
        for p, grad in saved:
            p.grad = grad


def _task_batch(model: nn.Module, task: Any, batch: Any, gradients: bool, current: dict, calls: dict) -> int:
    from netsculpt.train.evaluate import model_device

    inputs, targets = task.to_device(batch, model_device(model))
    current["labels"] = targets
    calls.clear()
    if gradients:
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            task.calibration_loss(model, inputs, targets).backward()
        model.zero_grad(set_to_none=True)
    else:
        with torch.no_grad():
            task.forward(model, inputs)
    return task.batch_size(inputs, targets)


def language_task_for(batch: Any, stat: StreamingStatistic) -> Any:
    """The ``language_modeling`` task when the first batch is token ids (``tasks/language_model.py``) and
    the criterion differentiates a loss (taylor, fisher) or the batch is a dict (which only that task
    can call the model with); otherwise None, and a plain ids tensor keeps the activation-only path.
    A criterion sorting samples by class (hrel, gpp) has no class per text: refused."""
    from netsculpt.tasks.language_model import LanguageModeling, token_batch_kind

    kind = token_batch_kind(batch)
    if kind is None or (kind != "dict" and not stat.needs_gradients):
        return None
    if _LABELS in getattr(stat, "needs", ()) and not stat.needs_gradients:
        raise PruningError(
            f"{type(stat).__name__} needs one class label per sample, and token batches carry the next "
            "token as their labels; use taylor or fisher (next-token loss), chip or hrank, or l1"
        )
    return LanguageModeling()


def _take(data: Iterable[Any], n: int) -> Iterable[Any]:
    for i, batch in enumerate(data):
        if i >= n:
            return
        yield batch
