"""The base of the int subclasses a trace hands the model's code (channel counts, marked attributes)."""

from __future__ import annotations


class PlainInt(int):
    """An int that marks a size for one trace. A model may keep it (caching ``x.shape`` on itself), so it
    copies and pickles as the plain ``int`` it stands for: nothing of netsculpt may survive in a user's
    model or file."""

    def __reduce__(self) -> tuple[type, tuple[int]]:
        return int, (int(self),)

    def __copy__(self) -> int:
        return int(self)

    def __deepcopy__(self, memo: dict) -> int:
        return int(self)
