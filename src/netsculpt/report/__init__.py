"""Reports a person can read: ``results.json`` (schema) -> charts -> one self-contained ``report.html``.

``write_report(run_dir)`` is called at the end of every run; ``netsculpt report RUN_DIR`` regenerates
it and ``netsculpt report RUN_A RUN_B --out DIR`` compares runs on shared plots.
"""

from netsculpt.report.pareto import non_dominated, pareto_front
from netsculpt.report.run import Run, load_run
from netsculpt.report.schema import SCHEMA_VERSION, Results, json_schema, load_results, validate_results
from netsculpt.report.writer import write_comparison, write_report

__all__ = [
    "SCHEMA_VERSION",
    "Results",
    "Run",
    "json_schema",
    "load_results",
    "load_run",
    "non_dominated",
    "pareto_front",
    "validate_results",
    "write_comparison",
    "write_report",
]
