"""Decide how many channels each group keeps: uniform ratio, targets (MACs / params / channels) with a
uniform or global strategy, or explicit widths."""

from netsculpt.allocate.cost import CostModel
from netsculpt.allocate.targets import Target, target_plan, widths_plan
from netsculpt.allocate.uniform import check_ratio, keep_count, select_keep, uniform_plan

__all__ = [
    "CostModel",
    "Target",
    "check_ratio",
    "keep_count",
    "select_keep",
    "target_plan",
    "uniform_plan",
    "widths_plan",
]
