"""Curvature measurements taken during training: analysis jobs, not optimizers.

A run spec's optional ``measure`` section names one measurement of
:data:`jobs.measure.registry.MEASUREMENTS` and the epoch boundaries to take
it at. The trainer takes it right after that boundary's evaluation, on a
fixed measurement batch (the same training examples at every epoch, drawn
by a generator of its own), and logs one record to ``measurements.jsonl``:

``{"epoch", "step", "measurement", "examples", "seconds", "scalars": {...}, "arrays": {...}}``

``scalars`` are numbers (what tables and W&B show), ``arrays`` lists (what
figures draw). The measurements (seed 002@81k–98k, 003@133k/@178k):

* ``hessian_spectrum`` (:mod:`.spectrum`): the top Hessian eigenvalues by
  power iteration with deflation;
* ``taylor`` (:mod:`.taylor`): Taylor remainders along a random direction
  and their log-log slopes;
* ``update_line`` (:mod:`.update_line`): the loss along the optimizer's
  update direction, a parabola fitted to it, and the angle between the
  direction and the gradient at the parabola's minimum;
* ``loss_surface`` (:mod:`.surface`): the loss on a 2-D grid along the top
  two Hessian eigenvectors or random filter-normalised directions.

Training is left untouched (:func:`.take.untouched`): parameters, buffers,
gradients, optimizer state and every global random state are restored
bitwise, so a run logs the same metrics with and without a measurement.
Importing this package does not import torch.
"""
