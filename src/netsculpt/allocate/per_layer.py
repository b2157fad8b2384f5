"""Choosing layers the way other pruning tools' configs do, and a pruning ratio per layer.

Users of Torch-Pruning (``pruning_ratio_dict``, ``ignored_layers``) and NNI (``config_list`` with
``op_names`` / ``op_types`` / ``exclude``) name layers by module, by class or by pattern. netsculpt accepts
the same in ``ignored=`` and ``ratios=``: a key is a module name, a shell glob over module names
(``"layer4.*"``; ``*`` also crosses dots), a module class (``nn.Linear``), one of the model's module
objects, or (for ``ratios=``) a channel group id from ``ns.trace``. A block or stage stands for every
layer inside it. A class may also be written as text (``"Detect"``, ``"pkg.mod.Detect"``): the classes
of the model's own modules are searched (see :mod:`netsculpt.allocate.class_keys`).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from torch import nn

from netsculpt.allocate.class_keys import (
    class_hint,
    find_class,
    looks_like_class,
    model_classes,
    qualified,
    torch_nn_classes,
    warn_shadowed,
)
from netsculpt.allocate.uniform import check_ratio, keep_count, select_keep
from netsculpt.errors import NetsculptWarning, PruningError, warn_user
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.surgery.plan import PrunePlan

GLOB_CHARS = "*?["


def record_label(model: nn.Module, key: Any) -> str:
    """A key as the plan's JSON records it: the string itself, a class's name, a module's name."""
    if isinstance(key, nn.Module):
        return next((n for n, m in model.named_modules() if m is key), type(key).__name__)
    return key.__name__ if isinstance(key, type) else str(key)


def describe(model: nn.Module, key: Any) -> str:
    """A key for messages: quoted when the user wrote a string."""
    return repr(key) if isinstance(key, str) else record_label(model, key)


def select_modules(model: nn.Module, key: Any, what: str, group_ids: Iterable[str] = ()) -> list[str]:
    """Names of the modules of ``model`` that ``key`` selects (the root module never).

    A string that is neither a module name, a glob matching one, nor one of ``group_ids`` is refused
    with the closest names: a typo must not silently prune (or protect) nothing."""
    named = [(n, m) for n, m in model.named_modules() if n]
    if isinstance(key, type) and issubclass(key, nn.Module):
        found = [n for n, m in named if isinstance(m, key)]
        if not found:
            own = [qualified(c) for c in model_classes(named) if c.__name__ == key.__name__]
            hint = f"; for the model's own class write {', '.join(own)}" if own else ""
            raise PruningError(
                f"{what}: the model has no {key.__name__} module; its layer classes: {_classes(named)}{hint}"
            )
        warn_shadowed(named, key)
        return found
    if isinstance(key, nn.Module):
        found = [n for n, m in named if m is key]
        if not found:
            raise PruningError(
                f"{what}: {type(key).__name__} object is not a module of this model; pass module names "
                "(as in model.named_modules()), globs such as 'layer4.*', classes or the model's own modules"
            )
        return found
    if not isinstance(key, str) or not key:
        raise PruningError(
            f"{what}: {key!r} ({type(key).__name__}) is not a module name, glob, module class or module of "
            "this model"
        )
    names = [n for n, _ in named]
    if key in names:
        return [key]
    if any(c in key for c in GLOB_CHARS):
        found = [n for n in names if fnmatch.fnmatchcase(n, key)]
        if found:
            return found
        raise PruningError(f"{what}: the pattern {key!r} matches no module name; names look like {names[:4]}")
    if key in set(group_ids):
        return []
    if looks_like_class(key):  # a class of the model's own (Detect, pkg.mod.Detect): never imported
        cls = find_class(named, key, what)
        if cls is not None:
            return [n for n, m in named if isinstance(m, cls)]
    close = difflib.get_close_matches(key, names, n=3)
    if not close and looks_like_class(key):  # no module name near it either: a misspelt class
        raise PruningError(f"{what}: no module or layer class called {key!r}{class_hint(named, key)}")
    hint = (
        f"; did you mean {', '.join(close)}?"
        if close
        else "; see model.named_modules() or ns.trace(model, x)"
    )
    raise PruningError(f"{what}: no module called {key!r}{hint}")


def _classes(named: list[tuple[str, nn.Module]]) -> str:
    return ", ".join(sorted({type(m).__name__ for _, m in named}))


def expand_ignored(model: nn.Module, ignored: Any) -> Any:
    """``ignored`` with globs and classes replaced by the module names they select (names and module
    objects pass through unchanged, for the tracer's own checks)."""
    if _is_pattern(ignored):  # one glob or class
        ignored = [ignored]
    plain = ignored is None or isinstance(ignored, str | nn.Module | dict)
    if plain or not isinstance(ignored, Iterable):
        return ignored  # the tracer reads it (and refuses what is neither names nor modules)
    items = list(ignored)
    named = list(model.named_modules())
    patterns = [_is_pattern(i) or _is_class_name(i, named) for i in items]
    return _expand(model, items, patterns) if any(patterns) else items


def key_from_text(text: str) -> str | type[nn.Module]:
    """A layer key written as text (a CLI flag, a recipe): ``Linear``, ``nn.Linear`` or
    ``torch.nn.Linear`` is that torch.nn class (looked up in torch.nn, never imported: a recipe must not
    run code), also when the model has another class of that name (recipes keep their meaning; a warning
    names the other). Anything else stays text for the model to check: a module name, a glob, or the
    name of a class of the model's own modules (``Detect``, ``pkg.mod.Detect``)."""
    from netsculpt.errors import ConfigError

    text = text.strip()
    prefixed = text.startswith(("torch.nn.", "nn."))
    name = text.removeprefix("torch.").removeprefix("nn.")
    found = getattr(nn, name, None) if name.isidentifier() and name[:1].isupper() else None
    if isinstance(found, type) and issubclass(found, nn.Module):
        return found
    if prefixed:
        classes = {n.lower(): n for n in torch_nn_classes()}
        close = difflib.get_close_matches(name.lower(), list(classes), n=1)
        hint = f"did you mean {classes[close[0]]}? " if close else ""
        raise ConfigError(
            f"{text!r} is not a torch.nn module class; {hint}write a class as Linear or torch.nn.Linear "
            "(only torch.nn classes are looked up), or a module name / glob such as 'layer4.*'"
        )
    if not text:
        raise ConfigError("an empty layer key; write a module name, a glob such as 'layer4.*' or a class")
    return text


def _is_pattern(item: Any) -> bool:
    if isinstance(item, type):
        return True
    return isinstance(item, str) and any(c in item for c in GLOB_CHARS)


def _is_class_name(item: Any, named: list[tuple[str, nn.Module]]) -> bool:
    """A string that names no module but reads as a class (``Detect``) and names one of the model's, or
    nothing close to a module name (a misspelt name, ``b1.O``, is left for the tracer to name)."""
    names = [n for n, _ in named]
    if not isinstance(item, str) or item in names or not looks_like_class(item):
        return False
    if find_class(named, item, "ignored") is not None:
        return True
    return not difflib.get_close_matches(item, names, n=1)


def _expand(model: nn.Module, items: list[Any], patterns: list[bool]) -> list[Any]:
    out: list[Any] = []
    for item, pattern in zip(items, patterns, strict=True):
        out.extend(select_modules(model, item, "ignored") if pattern else [item])
    return list(dict.fromkeys(out))


def with_children(selected: list[str], names: list[str]) -> set[str]:
    """``selected`` and every module inside them: a block or stage (``model.layer3``) stands for its
    layers, as it does in ``ignored=``."""
    prefixes = tuple(n + "." for n in selected)
    return set(selected) | {n for n in names if n.startswith(prefixes)}


def producers(group: ChannelGroup, shapes: Mapping[str, int]) -> tuple[set[str], set[str]]:
    """The modules whose output channels are this group's: those with conv/linear-like weights first
    (their ratio decides), then every one (a norm layer after them; it decides only on its own)."""
    outs = {m.module for m in group.members if m.role == "out" and m.dim == 0}
    layers = {
        m.module for m in group.members if m.role == "out" and m.dim == 0 and shapes.get(m.name, 0) >= 2
    }
    return layers, outs


def group_ratios(
    model: nn.Module, graph: ChannelGraph, ratios: Mapping[Any, float], default: float
) -> dict[str, float]:
    """Group id -> fraction to remove. Later keys override earlier ones for the modules they share (so
    ``{"*": 0.3, "layer4.*": 0.7}`` gives layer4 0.7); a coupled group whose modules got different
    ratios takes the smallest, with a warning (its channels are removed from all of them at once)."""
    if not isinstance(ratios, Mapping):
        from netsculpt.checks import refuse

        raise refuse(
            "ratios",
            ratios,
            "a dict of module name / glob / class / module / group id -> ratio",
            "",
            PruningError,
        )
    ids = [g.id for g in graph.groups]
    names = [n for n, _ in model.named_modules() if n]
    keys: list[tuple[str, float, set[str], str | None]] = []  # label, ratio, modules, group id
    for key, value in ratios.items():
        label = describe(model, key)
        try:
            value = check_ratio(value)
        except PruningError as err:
            raise PruningError(f"ratios[{label}]: {err}") from None
        selected = with_children(select_modules(model, key, f"ratios[{label}]", ids), names)
        keys.append((label, value, selected, None if selected else key))
    by_module: dict[str, float] = {}
    for _, value, selected, _ in keys:  # later keys override earlier ones
        by_module.update(dict.fromkeys(selected, value))
    by_group = {gid: value for _, value, _, gid in keys if gid is not None}
    shapes = {n: t.dim() for n, t in [*model.named_parameters(), *model.named_buffers()]}
    out: dict[str, float] = {}
    hit: set[int] = set()  # keys (by position) that reach a prunable group
    for g in graph.prunable_groups:
        layers, outs = producers(g, shapes)
        hit.update(i for i, (_, _, selected, gid) in enumerate(keys) if gid == g.id or selected & outs)
        mods = layers if layers & set(by_module) else outs
        given = {by_group[g.id]} if g.id in by_group else {by_module[m] for m in mods if m in by_module}
        if len(given) > 1:
            shared = ", ".join(sorted(m for m in mods if m in by_module)[:6])
            warn_user(
                f"ratios: {shared} share their channels (group {g.id!r}) but were given ratios "
                f"{', '.join(f'{r:g}' for r in sorted(given))}; the group loses {min(given):g} of them. Give "
                "coupled layers one ratio (ns.trace(model, x) lists the groups)",
                NetsculptWarning,
            )
        out[g.id] = min(given) if given else default
    idle = [k[0] for i, k in enumerate(keys) if i not in hit and k[1] > 0]  # a 0 asks for nothing
    if idle:
        warn_user(
            f"ratios: {', '.join(idle)} selects no prunable channel group (its channels are pinned or "
            "ignored, or it produces none: see ns.trace(model, x) for why), so it removes nothing",
            NetsculptWarning,
        )
    return out


def ratios_plan(
    model: nn.Module,
    graph: ChannelGraph,
    scores: dict[str, np.ndarray],
    ratios: Mapping[Any, float],
    default: float,
    *,
    round_to: int | str = 1,
    min_channels: int = 1,
    meta: dict | None = None,
) -> PrunePlan:
    """Remove ``floor(r * size)`` channels of each prunable group, ``r`` from ``ratios`` (else
    ``default``), lowest scores first, kept counts rounded up as ``uniform_plan`` rounds them."""
    widths = ratio_widths(model, graph, ratios, default, round_to=round_to, min_channels=min_channels)
    keep = {g.id: select_keep(g, scores[g.id], widths[g.id]) for g in graph.prunable_groups if g.id in widths}
    sizes = {g.id: g.size for g in graph.groups}
    saved = {record_label(model, k): float(v) for k, v in ratios.items()}
    return PrunePlan(keep, sizes, {**(meta or {}), "ratios": saved, "ratio": default, "round_to": round_to})


def ratio_widths(
    model: nn.Module,
    graph: ChannelGraph,
    ratios: Mapping[Any, float],
    default: float,
    *,
    round_to: int | str = 1,
    min_channels: int = 1,
) -> dict[str, int]:
    """Group id -> channels kept, for the groups that lose any: ``ratios_plan``'s widths, which
    ``prune_iteratively`` also ends at (one rule, so both land on the same architecture). Ratios that
    remove no channel after rounding are refused, naming the rounding."""
    from netsculpt.allocate.widths import group_step

    per_group = group_ratios(model, graph, ratios, default)
    out: dict[str, int] = {}
    for g in graph.prunable_groups:
        r = per_group[g.id]
        k = keep_count(g, int(r * g.size), round_to=group_step(g.size, round_to), min_channels=min_channels)
        if k < g.size:
            out[g.id] = k
    if not out and any(per_group.values()):
        raise PruningError(
            f"ratios= removed no channel: every group it names keeps all its channels after rounding up to "
            f"round_to={round_to!r} and min_channels={min_channels}; raise the ratios or pass round_to=1"
        )
    return out
