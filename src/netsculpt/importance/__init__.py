"""Channel importance criteria (a registry)."""

from netsculpt.importance import magnitude  # noqa: F401  (registers l1, l2, random)
from netsculpt.importance.base import CRITERIA, Criterion, get_criterion, list_criteria, register_criterion

__all__ = ["CRITERIA", "Criterion", "get_criterion", "list_criteria", "register_criterion"]
