"""Data-parallel wrappers (``nn.DataParallel``, ``DistributedDataParallel``) around a user's network.

A wrapper holds no weights of its own: it only prefixes every name with ``module.``. Saving, measuring
or exporting it would record the wrapper (a saved folder that loads as a ``DataParallel``, layer names
``module.conv1``, an ONNX export that fails), so those entry points use the network inside, with a
warning, as ``torch.save(model.module.state_dict())`` does. Pruning is refused instead: it returns a new
model of new shapes, and a wrapper must be built again around it (``DistributedDataParallel`` sizes its
gradient buckets when it is built), which is the order Torch-Pruning and NNCF document: compress
``model.module``, then wrap.
"""

from __future__ import annotations

from torch import nn

from netsculpt.errors import NetsculptWarning, TraceError, warn_user

#: class names of wrappers that forward to ``.module`` unchanged (torch's own, and look-alikes such as
#: apex's ``DistributedDataParallel``); FullyShardedDataParallel is not one: its ``.module`` holds shards
WRAPPERS = ("DataParallel", "DistributedDataParallel")


def parallel_wrapper(model: nn.Module) -> str | None:
    """The wrapper's class name if ``model`` is a data-parallel wrapper around one network, else None."""
    if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
        return type(model).__name__
    if type(model).__name__ not in WRAPPERS:
        return None
    children = dict(model.named_children())
    return type(model).__name__ if list(children) == ["module"] else None


def unwrap_parallel(model: nn.Module, verb: str) -> nn.Module:
    """The network inside any (nested) data-parallel wrappers, warning once that ``verb`` uses it."""
    names = []
    while (name := parallel_wrapper(model)) is not None:
        names.append(name)
        model = model.module  # type: ignore[assignment]
    if names:
        warn_user(
            f"{verb} got a {names[0]}: using {'model' + '.module' * len(names)} (the "
            f"{type(model).__name__} inside it); the wrapper holds no weights of its own",
            NetsculptWarning,
        )
    return model


def refuse_parallel(model: nn.Module) -> None:
    """Pruning changes shapes under the wrapper: ask for the network, to be wrapped again afterwards."""
    name = parallel_wrapper(model)
    if name is not None:
        raise TraceError(
            f"the model is a {name} wrapper; netsculpt prunes the network inside it: pass model.module, "
            f"then wrap the pruned model in {name} again (a wrapper built before pruning keeps the old "
            "shapes)"
        )
