"""The results plane: run folders → tidy tables → statistics over seeds → protocols → tables, plots, report.

Reads run folders (or a W&B project, or DeepOBS result files); never imports ``orchestrator`` or ``torch``.
"""

from analysis.aggregate import Aggregate, Options, Target, aggregate_sweep, aggregate_sweeps, load_aggregate
from analysis.report import write_report

__all__ = ["Aggregate", "Options", "Target", "aggregate_sweep", "aggregate_sweeps", "load_aggregate", "write_report"]
