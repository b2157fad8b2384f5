"""Errors netsculpt raises on purpose.

Every error names the user's object and says what to do next, so a user never has to read a traceback
from deep inside torch to understand what went wrong.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings


class NetsculptError(Exception):
    """Base class: anything netsculpt raises deliberately."""


class UnknownNameError(NetsculptError, ValueError):
    """A registry lookup failed (model, dataset, criterion, ...)."""


class DataError(NetsculptError, ValueError):
    """A dataset is missing, incomplete or in the wrong format."""


class CheckpointError(NetsculptError, ValueError):
    """A checkpoint or saved model cannot be read safely."""


class TraceError(NetsculptError, RuntimeError):
    """A model could not be traced into a channel graph."""


class PruningError(NetsculptError, ValueError):
    """A pruning request cannot be satisfied (bad ratio, empty group, unreachable target, ...)."""


class ConfigError(NetsculptError, ValueError):
    """A recipe or configuration value is invalid."""


class RunLockedError(NetsculptError, RuntimeError):
    """Another process is running in the same run folder."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid  # the holder's PID, when it could be read


class DiskFullError(NetsculptError, OSError):
    """A write failed because the disk (or the file size limit) is full; the previous file is intact."""


class NetsculptWarning(UserWarning):
    """Something netsculpt can go on with but the user should know (``warnings.filterwarnings`` it)."""


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_PLUMBING = (  # between netsculpt frames: decorators, and torch calling a netsculpt layer
    contextlib.__file__,
    os.path.join("torch", "utils", "_contextlib.py"),
    os.path.join("torch", "nn", "modules", "module.py"),
)


def _ours(filename: str) -> bool:
    return filename.startswith(_PACKAGE) or filename.endswith(_PLUMBING)


def warn_user(message: str, category: type[Warning] = NetsculptWarning) -> None:
    """Warn at the user's own line (their ``ns.prune(...)`` call), not at the netsculpt line that noticed:
    the stack level is that of the first frame outside the netsculpt package and the plumbing above (so
    a netsculpt layer in the user's model warns at the user's forward). Python 3.11 has no
    ``skip_file_prefixes``, and a fixed ``stacklevel`` is right for one call path only. With no such
    frame (everything below is netsculpt's) the outermost frame is used."""
    frame, level = sys._getframe(1), 2  # level 2: warn_user's caller
    while frame.f_back is not None and _ours(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def a_type(value: object) -> str:
    """``value``'s type with its article for a message: "an int", "a list", "None" (not "a NoneType")."""
    return "None" if value is None else with_article(type(value).__name__)


def with_article(name: str) -> str:
    """``name`` after "a" or "an" as it is spoken: "an int", "an OrderedDict", "a UUID", "an ndarray"."""
    lower = name.lower()
    consonant_sound = lower.startswith(("uni", "use", "usu", "uu", "ut", "one"))
    vowel_sound = lower[:1] in ("a", "e", "i", "o", "u") or lower.startswith("nd")
    return f"{'an' if vowel_sound and not consonant_sound else 'a'} {name}"
