"""The shared optimizer core: every optimizer is a ``torch.optim.Optimizer``.

Closure protocol: ``step(closure)`` where ``closure(backward=True)``
re-evaluates the loss on the same minibatch with the same random numbers
(dropout) on every call, zeroes and fills ``.grad`` only when ``backward``
is true, and returns the loss tensor. Optimizers that need more than one
evaluation per step (line searches) expose per-step diagnostics in
``optimizer.diagnostics``.
"""
