"""The results plane: run folders → tidy tables → statistics over seeds → protocols → tables, plots, report.

Reads run folders (or a W&B project, or DeepOBS result files); never imports ``orchestrator`` or ``torch``.
The entry points are :func:`analysis.aggregate.aggregate_sweeps` and :func:`analysis.report.write_report`.
This file imports nothing, so the command line can read :data:`CRITERIA` and the plot choices without loading
pandas.
"""

#: How DeepOBS's selection scores a setting: the median final or best validation metric.
CRITERIA = ("final_valid", "best_valid")
#: The figures ``optbench plot`` draws (:mod:`analysis.paper`), its output formats and column widths.
PLOT_KINDS = ("curves", "sensitivity", "profiles", "budget")
PLOT_FORMATS = (".pdf", ".png", ".svg")
PLOT_WIDTHS = ("single", "double")
