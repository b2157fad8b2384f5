"""Depth compression: remove residual blocks, fold layers, triage blocks, scale depth x width x resolution."""

from netsculpt.depth.api import (
    BudgetError,
    DepthPlan,
    fold,
    fold_plan,
    plan_depth,
    prune_depth,
    remove_blocks,
)

__all__ = ["BudgetError", "DepthPlan", "fold", "fold_plan", "plan_depth", "prune_depth", "remove_blocks"]
