"""Splits: validation held out from training (as large as the test set), disjoint, fixed for a seed."""

from __future__ import annotations

import numpy as np
import torch
from problem_files import TEST, TRAIN

from jobs.problems.build import build_problem
from jobs.problems.data.splits import SPLIT_SEED, hold_out, with_validation

CPU = torch.device("cpu")


def test_hold_out_is_disjoint_covering_and_deterministic_for_a_seed():
    train, valid = hold_out(100, 20, seed=3)
    assert len(valid) == 20 and len(train) == 80
    assert set(train).isdisjoint(valid) and set(train) | set(valid) == set(range(100))
    again = hold_out(100, 20, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(valid, again[1])
    assert not np.array_equal(valid, hold_out(100, 20, seed=4)[1])


def test_validation_is_as_large_as_the_test_set_and_taken_from_training():
    images = np.arange(50)[:, None]
    data = with_validation({"train": (images, images[:, 0] % 3), "test": (images[:10] + 100, images[:10, 0])})
    assert [len(data[s][0]) for s in ("train", "valid", "test")] == [40, 10, 10]
    assert sorted(np.concatenate([data["train"][0], data["valid"][0]])[:, 0]) == list(range(50))
    assert np.array_equal(data["valid"][1], data["valid"][0][:, 0] % 3)  # labels travel with their images
    assert np.array_equal(data["test"][0][:, 0], np.arange(100, 110))


def rows(tensor: torch.Tensor) -> set[bytes]:
    return {row.tobytes() for row in tensor.flatten(1).numpy()}


def test_image_problem_splits_are_disjoint_and_every_run_sees_the_same(written):
    data_dir, arrays = written
    config = {"name": "cifar10_3c3d", "weight_decay": 0.0, "augment": True}
    problem = build_problem(config, 4, CPU, torch.float32, data_dir=data_dir)
    splits = problem.splits
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [TRAIN - TEST, TEST, TEST]
    train, valid, test = (rows(splits[s].inputs) for s in ("train", "valid", "test"))
    assert train.isdisjoint(valid) and train.isdisjoint(test) and valid.isdisjoint(test)
    assert train | valid == {r.tobytes() for r in arrays["cifar10"]["train"][0]}
    # the split is the problem's, not the run's: another seed builds the same one
    torch.manual_seed(123)
    other = build_problem(config, 4, CPU, torch.float32, data_dir=data_dir)
    assert all(torch.equal(splits[s].inputs, other.splits[s].inputs) for s in splits)
    expected_valid = hold_out(TRAIN, TEST, SPLIT_SEED)[1]
    assert torch.equal(splits["valid"].targets, torch.as_tensor(arrays["cifar10"]["train"][1][expected_valid]))


def test_training_loss_is_evaluated_on_a_test_sized_subset(written):
    problem = build_problem({"name": "mnist_logreg", "weight_decay": 0.0}, 4, CPU, torch.float64, data_dir=written[0])
    assert problem.train_eval_size == TEST < len(problem.splits["train"])
    with torch.no_grad():
        problem.model[1].weight.normal_()
        subset = problem.prepare(problem.splits["train"].inputs[:TEST])
        expected = torch.nn.functional.cross_entropy(problem.model(subset), problem.splits["train"].targets[:TEST])
    assert abs(problem.evaluate("train")["loss"] - float(expected)) < 1e-12
