"""netsculpt: make trained PyTorch CNNs smaller and faster, with measured proof.

import netsculpt as ns
graph = ns.trace(model, example_inputs)          # coupled channel groups
small = ns.prune(model, example_inputs, criterion="l1", ratio=0.5)
ns.measure(small, example_inputs)                # params, MACs, memory, size, latency
ns.save(small, "out/model"); ns.load("out/model")
"""

from __future__ import annotations

from netsculpt.adder import to_adder
from netsculpt.allocate import Target
from netsculpt.depth import fold, prune_depth
from netsculpt.errors import NetsculptError
from netsculpt.graph import ChannelGraph, ChannelGroup, register_function_rule, register_module_rule, trace
from netsculpt.importance import list_criteria, register_criterion
from netsculpt.io import load, save
from netsculpt.iterative import prune_iteratively
from netsculpt.measure import Metrics, measure
from netsculpt.models import create_model, list_models, model_input_shape
from netsculpt.prune import apply_plan, plan_pruning, prune
from netsculpt.surgery import PrunePlan, register_fixup

__version__ = "0.1.0"

__all__ = [
    "ChannelGraph",
    "ChannelGroup",
    "Metrics",
    "NetsculptError",
    "PrunePlan",
    "Target",
    "apply_plan",
    "create_model",
    "fold",
    "list_criteria",
    "list_models",
    "load",
    "measure",
    "model_input_shape",
    "plan_pruning",
    "prune",
    "prune_depth",
    "prune_iteratively",
    "register_criterion",
    "register_fixup",
    "register_function_rule",
    "register_module_rule",
    "save",
    "to_adder",
    "trace",
]
