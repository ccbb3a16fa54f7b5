"""Network architectures of the test problems, one module per family.

Each DeepOBS network follows DeepOBS's TensorFlow definition (layers,
TensorFlow "same" padding, initialisation); the line-search papers'
networks follow their original papers. Choices are noted where made.
"""
