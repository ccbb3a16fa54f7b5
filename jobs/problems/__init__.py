"""Test problems: a model, its loss with regularisation, data splits and metrics.

Build one with :func:`jobs.problems.build.build_problem`; the registry in
:mod:`jobs.problems.registry` lists them without importing torch.
"""
