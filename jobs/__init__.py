"""The data plane: what runs inside a job, and the contracts the other planes share with it.

The control plane (``orchestrator``) and the results plane (``analysis``) use
these modules of ``jobs``, and no others:

- ``jobs.spec``: the run spec (validation, run and setting ids, the one flattener);
- ``jobs.schema``: the vocabulary every setting is checked with (``Param``, ``SpecError``);
- ``jobs.run_folder``: the on-disk contract (file names, readers, states);
- ``jobs.entry``: how runs start (``RunPack`` for a scheduler task, ``run`` for one run);
- ``jobs.vectorized``: which runs train together as one group (``group_runs``, ``can_vectorize``);
- ``jobs.plugins``: the user's optimizers and problems (targets, code hashes, source folders);
- ``jobs.provenance``: what a run ran with (code versions, plugin records);
- ``jobs.problems.registry`` and ``jobs.problems.data.files``: which problems read which files;
- ``jobs.sinks``: what a running job reports (its W&B run, the heartbeat).

``jobs`` imports neither ``orchestrator`` nor ``analysis``; ``analysis`` does not
import ``orchestrator``; the optimizer core (``jobs.optim`` but its registry, and
``jobs.curvature``) imports only torch, numerical libraries, the standard library
and itself. ``tests/test_import_rules.py`` holds the code to all of this.
"""
