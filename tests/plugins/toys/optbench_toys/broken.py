"""An entry point that cannot load: its module fails on import, as a plugin with a missing dependency would."""

import optbench_toys_missing_dependency  # noqa: F401
