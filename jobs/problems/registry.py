"""Config names → test problems, with parameter schemas (torch-free).

Default batch sizes and training lengths are DeepOBS's where DeepOBS
defines the problem; they live in ``conf/problem/<name>.yaml``.
"""

from __future__ import annotations

from jobs.registry import Entry, Registry
from jobs.schema import Param, count, non_negative, unit_interval

PROBLEMS = Registry(
    "problem",
    {
        "quadratic_deep": Entry(
            "jobs.problems.quadratic:QuadraticDeep",
            {},
            doc="DeepOBS's 100-d noisy quadratic with a deep-learning-like eigenspectrum.",
        ),
        "rosenbrock": Entry(
            "jobs.problems.functions:Rosenbrock",
            {
                "start": Param("floats", length=2, help="initial point (x, y)"),
                "steps_per_epoch": count(1, "optimizer steps that make one 'epoch'"),
            },
            doc="The 2-D Rosenbrock function (a=1, b=100), deterministic.",
        ),
        "digits_mlp": Entry(
            "jobs.problems.digits:DigitsMLP",
            {
                "hidden": count(1, "units per hidden layer"),
                "layers": count(1, "hidden layers"),
                "dropout": unit_interval("dropout probability after each hidden layer"),
                "weight_decay": non_negative("L2 penalty added to the loss"),
            },
            doc="An MLP on scikit-learn's bundled 8x8 digits, fixed 1197/300/300 split.",
        ),
    },
)
