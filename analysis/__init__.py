"""The results plane: run folders → tidy tables → statistics over seeds → tables, plots, report.

Reads run folders only; never imports ``orchestrator`` or ``torch``.
"""

from analysis.aggregate import Aggregate, aggregate_sweep
from analysis.report import write_report

__all__ = ["Aggregate", "aggregate_sweep", "write_report"]
