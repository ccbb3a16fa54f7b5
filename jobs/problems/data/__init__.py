"""Datasets on disk: where each one lives under the data folder, readers of the standard formats, splits.

:mod:`jobs.problems.data.files` is torch-free (``optbench data check`` uses
it); the readers return numpy arrays.
"""
