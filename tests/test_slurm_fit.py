"""Which setting a request that can never run must change, on cluster descriptions the local cluster cannot show
(nodes of different sizes, typed GPUs, per-node and association limits); no cluster needed.

The real cluster's refusals, with ``sbatch --test-only`` deciding, are tests/slurm/test_slurm_bad_input.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.config import ConfigTree
from orchestrator.errors import UserError
from orchestrator.launchers import slurm_fit
from orchestrator.launchers.slurm import SlurmSettings
from orchestrator.slurmctl import Association, Limits, Node, Partition


def settings(**changes: Any) -> SlurmSettings:
    return SlurmSettings.from_config({**ConfigTree().option_config("launcher", "slurm"), **changes})


def node(name: str, cpus: int, memory_mb: int = 64_000, gpus: dict | None = None, features: str = "") -> Node:
    return Node(name, cpus, memory_mb, gpus or {}, frozenset(filter(None, features.split(","))))


GPU = Partition("gpu", False, 60, (node("g1", 64, 512_000, {"a100": 4}, "a100,ib"),
                                   node("g2", 32, 256_000, {"a100": 2, "v100": 2}, "ib"), node("g3", 8)), "up")
SMALL = Partition("debug", True, None, (node("n1", 2), node("n2", 2)), "up")


@pytest.mark.parametrize(("partition", "changes", "cpus"), [
    (SMALL, {"nodes": 2, "tasks_per_node": 2}, 1),  # the README's multi-node example on the local cluster
    (SMALL, {}, 2),
    (GPU, {"tasks_per_node": 8}, 2),
    (GPU, {"nodes": 3, "tasks_per_node": 4}, 2),  # the third largest node has 8 CPUs: 2 per task
    (GPU, {"nodes": 3, "tasks_per_node": 8}, 1),
    (Partition("capped", False, None, (node("n1", 64),), "up", max_cpus_per_node=3), {"tasks_per_node": 2}, 1),
])
def test_an_unset_cpus_per_task_fits_the_nodes(partition, changes, cpus):
    assert slurm_fit.default_cpus(settings(**changes), partition) == cpus


def test_more_tasks_than_a_node_has_cpus_is_refused_even_unset():
    with pytest.raises(UserError, match=r"launcher.tasks_per_node=3 needs at least 3 CPUs per node, but the nodes of "
                                        r"partition 'debug' have 2; lower launcher.tasks_per_node to at most 2\."):
        slurm_fit.default_cpus(settings(tasks_per_node=3), SMALL)


@pytest.mark.parametrize(("changes", "sentence"), [
    ({"gpus_per_node": 1, "gpu_type": "h100"},
     "launcher.gpu_type=h100 but the nodes of partition 'gpu' have GPUs of the types a100, v100; set "
     "launcher.gpu_type to one of them."),
    ({"gpus_per_node": 3, "gpu_type": "a100", "nodes": 2},
     "launcher.gpus_per_node=3 but the nodes of partition 'gpu' have at most 2 GPUs of type a100; lower it."),
    ({"gpus_per_node": 5}, "launcher.gpus_per_node=5 but the nodes of partition 'gpu' have at most 4 GPUs; lower it."),
    ({"cpus_per_task": 17, "tasks_per_node": 4},
     "launcher.cpus_per_task=17 × launcher.tasks_per_node=4 needs 68 CPUs per node, but the nodes of partition "
     "'gpu' have at most 64; lower one of them."),
    ({"cpus_per_task": 33, "nodes": 2},
     "launcher.cpus_per_task=33 needs 33 CPUs per node, but the nodes of partition 'gpu' have at most 32; lower it."),
    ({"mem_gb": 300, "nodes": 2},
     "launcher.mem_gb=300 needs 307200 MB per node, but the nodes of partition 'gpu' have at most 256000 MB; lower "
     "launcher.mem_gb to at most 250."),
    ({"constraint": "[ib&a100]|h100*2"},
     "launcher.constraint=[ib&a100]|h100*2 asks for the feature 'h100', which no node of partition 'gpu' has "
     "(theirs are: a100, ib); change launcher.constraint."),
])
def test_the_cause_of_slurms_refusal_names_the_setting(changes, sentence):
    with pytest.raises(UserError) as refused:
        slurm_fit.explain(settings(**{"cpus_per_task": 1, **changes}), GPU, None)
    assert str(refused.value) == sentence


def test_a_request_each_of_whose_parts_fits_some_node_has_no_cause_to_name():
    """64 CPUs (only g1 has them) and a v100 (only g2 has one): Slurm's own words will make the sentence."""
    slurm_fit.explain(settings(cpus_per_task=64, gpus_per_node=1, gpu_type="v100"), GPU, None)


@pytest.mark.parametrize(("constraint", "names"), [
    ("a100|v100", ["a100", "v100"]), ("[rack1*2&rack2*4]", ["rack1", "rack2"]), ("ib&!gpu", ["ib", "gpu"]),
    ("(a|b)&c", ["a", "b", "c"]), ("fakegpu", ["fakegpu"]),
])
def test_the_features_a_constraint_names(constraint, names):
    assert slurm_fit.feature_names(constraint) == names


class Accounting:
    """sacctmgr's answers as :class:`slurm_fit._Accounting` gives them."""

    qos = {"normal": Limits({}, {}, None), "gpu": Limits({"cpu": 16}, {"gres/gpu": 1}, 120)}
    associations = [Association("lab", None, frozenset({"normal", "gpu"}), "gpu", Limits({"node": 1}, {}, 60))]
    default_account = "lab"

    def association(self, account, partition):
        return self.associations[0]


@pytest.mark.parametrize(("changes", "sentence"), [
    ({"gpus_per_node": 2},
     "QOS 'gpu' allows at most 1 GPU per node (MaxTRESPerNode), but launcher.gpus_per_node=2 asks for 2; lower it "
     "or choose another launcher.qos."),
    ({"cpus_per_task": 8, "tasks_per_node": 4},
     "QOS 'gpu' allows at most 16 CPUs per job (MaxTRESPerJob), but launcher.cpus_per_task=8 × "
     "launcher.tasks_per_node=4 asks for 32; lower them or choose another launcher.qos."),
    ({"qos": "normal", "nodes": 2},
     "Your association with account 'lab' allows at most 1 node per job (MaxTRESPerJob), but launcher.nodes=2 asks "
     "for 2; lower it or choose another launcher.account."),
    ({"qos": "normal", "time_min": 90},
     "Your association with account 'lab' allows at most 60 minutes per job (MaxWall), but launcher.time_min=90; "
     "lower launcher.time_min or choose another launcher.account."),
])
def test_qos_and_association_limits_name_the_setting(changes, sentence):
    with pytest.raises(UserError) as refused:
        slurm_fit.check_job_limits(settings(**{"cpus_per_task": 1, "time_min": 30, **changes}), GPU, Accounting())
    assert str(refused.value) == sentence
