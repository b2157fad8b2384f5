"""Channel importance criteria (a registry): ``ns.list_criteria()`` names them, docs/criteria.md explains
each one, what it needs and how it aggregates a coupled group."""

from netsculpt.importance import (  # noqa: F401  (each module registers its criteria)
    bn_scale,
    chip,
    fisher,
    fpgm,
    gpp,
    hrank,
    hrel,
    lamp,
    magnitude,
    taylor,
)
from netsculpt.importance.base import CRITERIA, Criterion, get_criterion, list_criteria, register_criterion

__all__ = ["CRITERIA", "Criterion", "get_criterion", "list_criteria", "register_criterion"]
