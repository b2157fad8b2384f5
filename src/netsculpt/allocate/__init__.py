"""Decide how many channels each group keeps."""

from netsculpt.allocate.uniform import check_ratio, keep_count, select_keep, uniform_plan

__all__ = ["check_ratio", "keep_count", "select_keep", "uniform_plan"]
