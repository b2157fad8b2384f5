"""Automatic width search: how many channels each group keeps, chosen by scoring pruned candidates.

Methods (a registry, :func:`list_searchers`): ``sensitivity`` (per-group curves, allocation by
threshold), ``greedy`` (AutoSlim-style slimming trajectory), ``genetic`` (pymoo GA under a cost budget,
two-step fitness), ``nsga2`` (Pareto front of metric vs cost), ``nao`` (gradient steps in a learnt
embedding), ``amc`` (a DDPG agent's per-group keep ratios) and ``n2n`` (REINFORCE policies that remove
residual blocks, then shrink the rest; its plans name the removed blocks: build with
:func:`apply_search_plan`); ``predictor="gcn"`` screens the GA's / NSGA-II's proposals
(:mod:`netsculpt.predictors`).
Costs are MACs or parameters (exact, from the cost model) or latency (a lookup table of measured layer
latencies). Candidates are scored in this process, in local worker processes or on Ray; a killed search
resumes from its state file.

```python
from netsculpt.search import GeneticConfig, search_widths
result = search_widths(model, x, "genetic", "macs=0.5", train_loader, val_loader, GeneticConfig())
small = ns.apply_plan(model, result.plan, x)
```
"""

from __future__ import annotations

from netsculpt.search.amc import AMCConfig
from netsculpt.search.api import (
    SEARCHERS,
    SearchResult,
    apply_search_plan,
    finetune_pruned,
    list_searchers,
    search_widths,
)
from netsculpt.search.config import (
    CONFIGS,
    CostTarget,
    GeneticConfig,
    GreedyConfig,
    NAOConfig,
    NSGA2Config,
    SearchConfig,
    SensitivityConfig,
    parse_targets,
)
from netsculpt.search.evaluator import CandidateEvaluator, EvalTask, Evaluation
from netsculpt.search.executors import Executor, ProcessExecutor, RayExecutor, SerialExecutor, make_executor
from netsculpt.search.n2n import N2NConfig
from netsculpt.search.space import SearchSpace

__all__ = [
    "CONFIGS",
    "SEARCHERS",
    "AMCConfig",
    "CandidateEvaluator",
    "CostTarget",
    "EvalTask",
    "Evaluation",
    "Executor",
    "GeneticConfig",
    "GreedyConfig",
    "N2NConfig",
    "NAOConfig",
    "NSGA2Config",
    "ProcessExecutor",
    "RayExecutor",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "SensitivityConfig",
    "SerialExecutor",
    "apply_search_plan",
    "finetune_pruned",
    "list_searchers",
    "make_executor",
    "parse_targets",
    "search_widths",
]
