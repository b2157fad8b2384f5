"""Argument checks at the door of the public ``ns.*`` functions.

A wrong type used to surface from deep inside as ``'NoneType' object has no attribute 'startswith'``; each
check here raises the project's own error instead, naming the argument, what was given and what is
accepted. The error class is the caller's (``PruningError`` for pruning options, ``ConfigError`` else).
"""

from __future__ import annotations

import inspect
import operator
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from netsculpt.errors import ConfigError, NetsculptError

ErrorType = type[NetsculptError]


def shown(value: Any) -> str:
    """``value`` as a message shows it: its repr (cut short) and its type, so ``'8'`` and ``8`` differ."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def refuse(arg: str, value: Any, accepted: str, where: str = "", error: ErrorType = ConfigError) -> Exception:
    """The error for a bad ``arg``: ``"ns.measure: batch_sizes= takes ...; got '16' (str)"``."""
    prefix = f"{where}: " if where else ""
    return error(f"{prefix}{arg}= takes {accepted}; got {shown(value)}")


def instance(
    value: Any,
    kinds: type | tuple[type, ...],
    arg: str,
    accepted: str,
    where: str = "",
    error: ErrorType = ConfigError,
    *,
    optional: bool = False,
) -> Any:
    """``value`` when it is one of ``kinds`` (or None, when ``optional``); refused otherwise."""
    if (optional and value is None) or isinstance(value, kinds):
        return value
    raise refuse(arg, value, accepted, where, error)


def module(value: Any, arg: str = "model", where: str = "", error: ErrorType = ConfigError) -> nn.Module:
    if not isinstance(value, nn.Module):
        raise refuse(arg, value, "a torch.nn.Module (e.g. ns.create_model(name))", where, error)
    return value


def materialised(
    model: nn.Module, verb: str, error: ErrorType = ConfigError, then: str | None = None
) -> nn.Module:
    """Refuse lazy layers (``nn.LazyConv2d``) that have not seen an input: they have no shapes to trace,
    count or save, and running the forward here would create their (random) weights inside the user's
    model, which netsculpt leaves as found. torch's own "uninitialized parameter" ValueError named neither
    the layer nor the fix; ns.trace / ns.prune on a model without lazy buffers materialised it silently."""
    from torch.nn.parameter import is_lazy

    lazy = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if is_lazy(t)]
    if lazy:
        raise error(
            f"cannot {verb} {type(model).__name__}: its lazy layers have no shapes yet "
            f"({', '.join(lazy[:3])}{', ...' if len(lazy) > 3 else ''}); run it once on an input "
            f"(model(example)) to materialise them, then {then or verb + ' it'}"
        )
    return model


def is_int(value: object) -> bool:
    """A Python int that is not a bool: a whole number as a JSON or YAML file loads it (True is 1 to
    ``isinstance``, and would pass for a count or an index)."""
    return isinstance(value, int) and not isinstance(value, bool)


def whole(value: Any, arg: str, where: str = "", *, minimum: int = 1, error: ErrorType = ConfigError) -> int:
    """A whole number >= ``minimum``: any integer type (numpy's too), not a bool, float or string."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        raise refuse(arg, value, f"a whole number >= {minimum}", where, error)
    return number


def optional_whole(
    value: Any, arg: str, where: str = "", *, minimum: int = 1, error: ErrorType = ConfigError
) -> int | None:
    return None if value is None else whole(value, arg, where, minimum=minimum, error=error)


def wholes(
    value: Any, arg: str, where: str = "", *, minimum: int = 1, error: ErrorType = ConfigError
) -> list[int]:
    """A list of whole numbers; one number is a list of one (``batch_sizes=8`` means ``[8]``). A string
    is refused: ``"16"`` would otherwise be read a character at a time, as ``[1, 6]``."""
    accepted = f"a whole number >= {minimum} or a list of them (e.g. [1, 8])"
    if isinstance(value, str | bytes | Mapping) or value is None:
        raise refuse(arg, value, accepted, where, error)
    if not isinstance(value, Iterable):
        return [whole(value, arg, where, minimum=minimum, error=error)]
    items = list(value)
    for item in items:
        try:
            whole(item, arg, where, minimum=minimum, error=error)
        except NetsculptError:
            raise refuse(arg, value, accepted, where, error) from None
    return [operator.index(item) for item in items]


def number(value: Any, arg: str, where: str = "", error: ErrorType = ConfigError) -> float:
    """A real number (int, float, numpy scalar), not a bool or a string."""
    if isinstance(value, bool | str | bytes):
        raise refuse(arg, value, "a number", where, error)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise refuse(arg, value, "a number", where, error) from None


def flag(value: Any, arg: str, where: str = "", error: ErrorType = ConfigError) -> bool:
    """True or False: ``latency="no"`` is truthy, so a string would have switched the option on."""
    if not isinstance(value, bool | np.bool_):
        raise refuse(arg, value, "True or False", where, error)
    return bool(value)


def names(
    value: Any,
    arg: str,
    where: str = "",
    *,
    items: tuple[type, ...] = (str,),
    accepted: str = "a name or a list of names",
    error: ErrorType = ConfigError,
) -> list[Any]:
    """A list of names (or other ``items``): ``None`` is none, and one item is a list of one."""
    if value is None:
        return []
    if isinstance(value, items):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        listed = list(value)
        if all(isinstance(item, items) for item in listed):
            return listed
    raise refuse(arg, value, accepted, where, error)


def path(value: Any, arg: str, where: str = "", error: ErrorType = ConfigError) -> Path:
    if not isinstance(value, str | os.PathLike) or (isinstance(value, str) and not value.strip()):
        raise refuse(arg, value, "a path (a str or pathlib.Path)", where, error)
    return Path(value)


def function(value: Any, arg: str, where: str = "", error: ErrorType = ConfigError) -> Callable | None:
    if value is not None and not callable(value):
        raise refuse(arg, value, "a function, or None", where, error)
    return value


def known_options(
    options: Mapping[str, Any], taker: Callable, where: str, error: ErrorType, drop: Iterable[str] = ()
) -> None:
    """Refuse keyword options ``taker`` does not take (or the caller sets itself: ``drop``), listing the
    rest: ``ns.prune(**options)`` forwards them, and Python's message named the inner function."""
    params = inspect.signature(taker).parameters
    taken = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in drop]
    unknown = sorted(set(options) - set(taken))
    if unknown:
        raise error(f"{where} has no option {', '.join(unknown)}; its options: {', '.join(taken)}")
