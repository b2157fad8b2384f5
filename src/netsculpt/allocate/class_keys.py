"""Layer keys that name a class of the user's own model (``Detect``, ``Bottleneck``), written as text.

A recipe or CLI flag cannot hold a class object, and importing the module a name points to would run
code a recipe's author chose. So a class name is matched only against the classes of the modules that
are already in the model being pruned: ``type(m).__name__``, or ``module.Class`` (``cls.__module__`` and
``cls.__qualname__``) when two classes share a name. Nothing is imported.
"""

from __future__ import annotations

import difflib

from torch import nn

from netsculpt.errors import NetsculptWarning, PruningError, warn_user

Named = list[tuple[str, nn.Module]]


def qualified(cls: type) -> str:
    """``cls`` as its defining module and name: what tells two classes of one name apart."""
    return f"{cls.__module__}.{cls.__qualname__}"


def looks_like_class(text: str) -> bool:
    """A dotted path of identifiers whose last part is capitalised: ``Detect``, ``pkg.mod.Detect``."""
    parts = text.split(".")
    return all(p.isidentifier() for p in parts) and parts[-1][:1].isupper()


def model_classes(named: Named) -> list[type]:
    """The classes of the model's modules, each once, in the order they first appear."""
    return list(dict.fromkeys(type(m) for _, m in named))


def find_class(named: Named, text: str, what: str) -> type | None:
    """The model's class that ``text`` names (plain or qualified), or None when it names none.

    Two different classes with the name asked for are refused: selecting both would prune (or protect)
    layers the user may not have meant, and choosing one silently is worse."""
    classes = model_classes(named)
    exact = [c for c in classes if qualified(c) == text]
    if exact:
        return exact[0]
    same = [c for c in classes if c.__name__ == text]
    if len(same) > 1:
        raise PruningError(
            f"{what}: the model has {len(same)} different classes called {text!r}: "
            f"{', '.join(qualified(c) for c in same)}; write the qualified name of the one you mean"
        )
    return same[0] if same else None


def warn_shadowed(named: Named, cls: type) -> None:
    """``Conv2d`` written as text means torch.nn's; say so when the model has its own, unrelated
    ``Conv2d`` class, whose modules that key leaves out."""
    others = [c for c in model_classes(named) if c.__name__ == cls.__name__ and not issubclass(c, cls)]
    if others and cls.__module__.startswith("torch.nn"):
        warn_user(
            f"{cls.__name__} selects torch.nn.{cls.__name__} layers; the model's own "
            f"{', '.join(qualified(c) for c in others)} is another class and is not selected: write its "
            "qualified name to select it",
            NetsculptWarning,
        )


def torch_nn_classes() -> list[str]:
    """The names of torch.nn's module classes (what an unqualified class name may also mean)."""
    return [n for n, c in vars(nn).items() if isinstance(c, type) and issubclass(c, nn.Module)]


def class_hint(named: Named, text: str) -> str:
    """``; did you mean ...?`` from torch.nn's classes and the model's own, for a misspelt class name."""
    candidates = {n: n for n in torch_nn_classes()}
    for cls in model_classes(named):
        candidates.setdefault(cls.__name__, cls.__name__)
        candidates[qualified(cls)] = qualified(cls)
    by_lower = {k.lower(): v for k, v in candidates.items()}
    close = difflib.get_close_matches(text.lower(), list(by_lower), n=3)
    mine = ", ".join(sorted({c.__name__ for c in model_classes(named)}))
    guess = f"did you mean {', '.join(by_lower[c] for c in close)}? " if close else ""
    return f"; {guess}the model's layer classes: {mine}"
