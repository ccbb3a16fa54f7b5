"""Every image problem a vectorised group may train gives each member what its run alone gives (tiny files).

Measured on CPU (torch 2.13): the members' losses differ from their runs' by at most 5e-4
relative in float32 (batched convolutions round differently; fmnist_2c2d on random images is
the most sensitive), 4e-16 in float64; accuracies not at all. The MLPs are bitwise in float32.
"""

from __future__ import annotations

import math

import pytest

from jobs.train import train
from jobs.vectorized import PROBLEMS, can_vectorize
from jobs.vectorized_train import GroupTrainer
from orchestrator.sweep import expand

pytestmark = pytest.mark.slow  # trains 20 small groups and their 60 runs alone

RTOL = {"float32": 5e-3, "float64": 1e-12}
IMAGES = [name for name in PROBLEMS if not name.startswith("digits")]


class Records:
    def __init__(self):
        self.records = []

    def log_eval(self, record):
        self.records.append({k: v for k, v in record.items() if k != "time"})

    def log_step(self, record):
        self.records.append(record)

    def log_progress(self, record):
        pass


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("problem", IMAGES)
def test_image_problems_train_each_member_as_its_run_alone(data_dir, problem, precision):
    augment = ("problem.augment=true",) if problem.endswith("3c3d") else ()
    specs = [run.spec for run in expand([f"problem={problem}", *augment, "train.batch_size=8", "train.epochs=1",
                                         "train.log_every=1", "optimizer=momentum", "optimizer.lr=0.01,0.03",
                                         "seed=0,1", f"precision={precision}"]).runs][:3]
    assert can_vectorize(specs) is None
    sinks = [Records() for _ in specs]
    GroupTrainer(specs, sinks, data_dir=data_dir).run()
    for spec, sink in zip(specs, sinks, strict=True):
        alone = Records()
        train(spec, alone, data_dir=data_dir)
        assert len(sink.records) == len(alone.records)
        for mine, theirs in zip(sink.records, alone.records, strict=True):
            assert mine.keys() == theirs.keys()
            for key, value in theirs.items():
                if isinstance(value, float) and math.isfinite(value) and not key.endswith("_accuracy"):
                    assert mine[key] == pytest.approx(value, rel=RTOL[precision]), key
                else:
                    assert mine[key] == value, key
