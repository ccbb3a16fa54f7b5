"""optbench test plugins: :class:`signsgd.SignSGD` and :class:`regression.LinearRegression`."""
