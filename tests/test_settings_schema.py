"""The execution settings (launcher, logger, container) speak the run spec's vocabulary (:mod:`jobs.schema`).

For each group: a value of the wrong type and one out of range each give
exactly one sentence naming the key, and the schema has exactly the keys of
the group's conf files. ``launcher.timeout_min``, the local launcher's old
name for ``time_min``, is answered with the new name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from jobs.schema import SpecError
from orchestrator import container, wandb_mode
from orchestrator.config import ConfigTree
from orchestrator.errors import UserError
from orchestrator.launchers import local, slurm

TINY = ("problem=rosenbrock", "problem.steps_per_epoch=10", "train.epochs=1", "logger=disabled")


def conf(group: str, option: str) -> dict[str, Any]:
    return ConfigTree().option_config(group, option)


def local_settings(changes: Mapping[str, Any]) -> local.LocalSettings:
    return local.LocalSettings.from_config({**conf("launcher", "local"), **changes})


def slurm_settings(changes: Mapping[str, Any]) -> slurm.SlurmSettings:
    return slurm.SlurmSettings.from_config({**conf("launcher", "slurm"), **changes})


def logger_settings(changes: Mapping[str, Any]) -> dict[str, Any]:
    return wandb_mode.resolve({**conf("logger", "disabled"), **changes}, group="g")


def container_settings(changes: Mapping[str, Any]) -> container.ContainerSettings | None:
    return container.ContainerSettings.from_config({**conf("container", "apptainer"), "image": "x.sif", **changes})


#: (settings builder, changes to its conf file's values, the whole message).
BAD_VALUES = {
    "local: wrong type": (local_settings, {"max_parallel": "four"},
                          "launcher.max_parallel must be a number (got 'four')."),
    "local: out of range": (local_settings, {"max_parallel": 0}, "launcher.max_parallel must be >= 1 (got 0)."),
    "local: no time": (local_settings, {"time_min": 0}, "launcher.time_min must be > 0 (got 0.0)."),
    "local: warm not a flag": (local_settings, {"warm": "yes"}, "launcher.warm must be true or false (got 'yes')."),
    "slurm: wrong type": (slurm_settings, {"cpus_per_task": "2"}, "launcher.cpus_per_task must be a number (got '2')."),
    "slurm: out of range": (slurm_settings, {"runs_per_job": 0}, "launcher.runs_per_job must be >= 1 (got 0)."),
    "slurm: memory out of range": (slurm_settings, {"mem_gb": 0}, "launcher.mem_gb must be > 0 (got 0.0)."),
    "slurm: name not text": (slurm_settings, {"partition": 7}, "launcher.partition must be a string (got 7)."),
    "slurm: setup not a list": (slurm_settings, {"setup": "module load cuda"},
                                "launcher.setup must be a list of strings (got 'module load cuda')."),
    "slurm: additional_parameters not a mapping": (
        slurm_settings, {"additional_parameters": ["mail-type"]},
        "launcher.additional_parameters must be a mapping of names to values (got ['mail-type'])."),
    "logger: wrong type": (logger_settings, {"heartbeat_seconds": "often"},
                           "logger.heartbeat_seconds must be a number (got 'often')."),
    "logger: out of range": (logger_settings, {"heartbeat_seconds": 0},
                             "logger.heartbeat_seconds must be > 0 (got 0.0)."),
    "logger: unknown mode": (logger_settings, {"mode": "sometimes"},
                             "logger.mode must be one of auto, offline, online, disabled (got 'sometimes')."),
    "logger: tag not text": (logger_settings, {"tags": ["a", 1]}, "logger.tags[1] must be a string (got 1)."),
    "container: wrong type": (container_settings, {"dev": "yes"}, "container.dev must be true or false (got 'yes')."),
    "container: out of range": (container_settings, {"nv": "maybe"},
                                "container.nv must be auto, true or false (got 'maybe')."),
    "container: unknown runtime": (container_settings, {"runtime": "docker"},
                                   "container.runtime must be one of apptainer, singularity (got 'docker')."),
    "container: empty python": (container_settings, {"python": ""}, "container.python must not be empty (got '')."),
    "container: empty bind": (container_settings, {"binds": ["/scratch", ""]},
                              "container.binds[1] must not be empty (got '')."),
}


@pytest.mark.parametrize(("settings", "changes", "message"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_a_bad_value_is_exactly_one_sentence_naming_its_key(settings: Callable, changes, message):
    with pytest.raises(SpecError) as refused:
        settings(changes)
    assert str(refused.value) == message


def test_a_bad_setting_reaches_the_user_as_one_sentence_with_exit_status_2(optbench, results):
    status, _, err = optbench("launch", *TINY, "launcher.max_parallel=0", "--results", results)
    assert status == 2
    assert " ".join(err.split()) == "optbench: error: launcher.max_parallel must be >= 1 (got 0)."
    assert not results.exists()


@pytest.mark.parametrize(("group", "option", "schema"), [
    ("launcher", "local", local.SCHEMA),
    ("launcher", "slurm", slurm.SCHEMA),
    *[("logger", option, wandb_mode.SCHEMA) for option in ("auto", "disabled", "offline", "online")],
    ("container", "apptainer", container.SCHEMA),
])
def test_the_schema_has_exactly_the_keys_of_the_conf_file(group, option, schema):
    assert set(schema) == set(conf(group, option)) - {"name"}


def test_every_conf_file_of_the_groups_is_covered():
    tree = ConfigTree()
    assert tree.options("launcher") == ["local", "slurm"]
    assert tree.options("logger") == ["auto", "disabled", "offline", "online"]
    assert tree.options("container") == ["apptainer", "none", "singularity"]
    assert set(tree.compose(("container=singularity",))["container"]) == set(container.SCHEMA)
    assert container.ContainerSettings.from_config(conf("container", "none")) is None


def test_nulls_in_the_conf_files_are_derived():
    cores = local.available_cores()
    assert local_settings({}) == local.LocalSettings(cores, 1, 120)
    assert local_settings({"max_parallel": 2}).threads_per_run == max(1, cores // 2)
    assert slurm_settings({"additional_parameters": None, "setup": None}).executor_parameters()["setup"] == []
    assert container_settings({"binds": None}).binds == ()


def test_the_logger_needs_only_its_mode():
    assert logger_settings({}) == {**conf("logger", "disabled"), "heartbeat_seconds": 10.0, "group": "g"}
    assert wandb_mode.resolve({"mode": "disabled"}, group="g") == {"mode": "disabled", "group": "g"}


RENAMED = "launcher.timeout_min is now called launcher.time_min, as on Slurm; set launcher.time_min=30 instead."


def test_an_old_local_config_is_told_the_new_name():
    old = {**{k: v for k, v in conf("launcher", "local").items() if k != "time_min"}, "timeout_min": 30}
    with pytest.raises(UserError) as refused:
        local.LocalSettings.from_config(old)
    assert str(refused.value) == RENAMED


def test_an_override_of_the_old_name_is_told_the_new_one(optbench, results):
    status, _, err = optbench("launch", *TINY, "+launcher.timeout_min=30", "--results", results)
    assert status == 2
    assert " ".join(err.split()) == f"optbench: error: {RENAMED}"
    status, _, err = optbench("launch", *TINY, "launcher.timeout_min=30", "--results", results)
    assert status == 2
    assert " ".join(err.split()) == ("optbench: error: launcher.timeout_min is now called launcher.time_min; "
                                     "set launcher.time_min instead.")
    assert not results.exists()
