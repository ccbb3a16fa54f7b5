"""Learning-rate schedules against their closed forms, warm-up, and their validation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from jobs.schedules import SCHEDULES, lr_lambda
from jobs.schema import SpecError

CONF = Path(__file__).resolve().parents[2] / "conf" / "schedule"
T = 1200  # steps: progress p is step p * T (1/3, 0.1, 0.25 ... are whole steps)


def factors(config: dict, progress: list[float], total: int = T) -> list[float]:
    schedule = lr_lambda(SCHEDULES.validate(config), total)
    return [schedule(round(p * total)) for p in progress]


#: Presets: yamls named for what they reproduce, each of a registered schedule.
PRESETS = {"algoperf_constant": "constant", "algoperf_cosine": "cosine", "algoperf_linear": "linear"}


def test_every_schedule_has_a_yaml_that_validates():
    configs = {path.stem: yaml.safe_load(path.read_text()) for path in sorted(CONF.glob("*.yaml"))}
    assert set(configs) == set(SCHEDULES.names()) | set(PRESETS)
    for stem, config in configs.items():
        assert config["name"] == PRESETS.get(stem, stem)
        validated = SCHEDULES.validate(config)
        # a warm-up starts from 0, anything else from the base learning rate
        assert lr_lambda(validated, T)(0) == pytest.approx(0.0 if validated.get("warmup") else 1.0)


def test_algoperf_presets_warm_up_over_two_percent_then_decay_to_zero():
    # AlgoPerf: warmup_steps = 0.02 * steps; then cosine (or linear) over the remaining 98 % down to 0
    presets = {stem: SCHEDULES.validate(yaml.safe_load((CONF / f"{stem}.yaml").read_text())) for stem in PRESETS}
    at = [0.01, 0.02, 0.02 + 0.98 / 2, 1.0]
    assert factors(presets["algoperf_cosine"], at) == pytest.approx([0.5, 1.0, 0.5, 0.0], abs=1e-12)
    assert factors(presets["algoperf_linear"], at) == pytest.approx([0.5, 1.0, 0.5, 0.0], abs=1e-12)
    assert factors(presets["algoperf_linear"], [0.02 + 0.98 / 4]) == pytest.approx([0.75])
    assert factors(presets["algoperf_constant"], at) == pytest.approx([0.5, 1.0, 1.0, 1.0])


def test_constant():
    assert factors({"name": "constant"}, [0, 0.3, 1]) == [1, 1, 1]


def test_multi_step_divides_by_ten_at_half_and_three_quarters():
    got = factors({"name": "step", "milestones": [0.5, 0.75], "factor": 0.1}, [0, 0.499, 0.5, 0.749, 0.75, 1])
    assert got == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_linear_decay_until_tau_then_constant():
    # alpha_k = (1 - k/tau) alpha_0 + (k/tau) alpha_tau, constant after tau (lecture 004)
    config = {"name": "linear", "final_factor": 0.2, "end": 0.5}
    got = factors(config, [0, 0.25, 0.5, 0.75, 1])
    assert got == pytest.approx([1, 0.6, 0.2, 0.2, 0.2])


def test_exponential_is_a_constant_factor_per_step():
    got = factors({"name": "exponential", "final_factor": 0.01}, [0, 0.5, 1])
    assert got == pytest.approx([1, 0.1, 0.01])
    schedule = lr_lambda({"name": "exponential", "final_factor": 0.01}, T)
    ratios = {round(schedule(k + 1) / schedule(k), 12) for k in (0, 17, 500, 998)}
    assert len(ratios) == 1 and ratios.pop() == pytest.approx(0.01 ** (1 / T))


def test_cosine():
    got = factors({"name": "cosine", "final_factor": 0.1}, [0, 0.5, 1])
    assert got == pytest.approx([1, 0.55, 0.1])
    assert factors({"name": "cosine", "final_factor": 0.0}, [1 / 3])[0] == pytest.approx(0.75)


def test_inverse_time():
    # 1 / (1 + gamma k) reaching 0.1 at the end: gamma = 9 / T
    got = factors({"name": "inverse_time", "final_factor": 0.1}, [0, 0.25, 0.5, 1])
    assert got == pytest.approx([1, 1 / 3.25, 1 / 5.5, 0.1])


def test_sgdr_restarts_at_the_end_of_each_cycle():
    # cycles of 0.1, 0.2, 0.4 of training (T_0 = 0.1, T_mult = 2): restarts at 0.1, 0.3, 0.7
    config = {"name": "sgdr", "first_period": 0.1, "period_factor": 2.0, "final_factor": 0.0}
    restarts = [0.1, 0.3, 0.7]
    assert factors(config, restarts) == pytest.approx([1, 1, 1])
    before = [r - 1 / T for r in restarts]  # the step before each restart
    assert factors(config, before) == pytest.approx(
        [0.5 * (1 + math.cos(math.pi * (b - start) / length)) for b, start, length in zip(
            before, (0, 0.1, 0.3), (0.1, 0.2, 0.4), strict=True)])
    # halfway through the second cycle (0.1 + 0.2 / 2) the factor is 0.5; a quarter into the third, (1 + cos(pi/4)) / 2
    assert factors(config, [0.2, 0.4]) == pytest.approx([0.5, 0.5 * (1 + math.cos(math.pi / 4))])


def test_sgdr_with_equal_cycles():
    config = {"name": "sgdr", "first_period": 0.25, "period_factor": 1.0, "final_factor": 0.5}
    last = 1 - 1 / T
    assert factors(config, [0, 0.125, 0.25, 0.5, 0.625, last]) == pytest.approx(
        [1, 0.75, 1, 1, 0.75, 0.5 + 0.25 * (1 + math.cos(math.pi * (last - 0.75) / 0.25))])


def test_warmup_ramps_linearly_then_runs_the_schedule_over_the_rest():
    config = {"name": "cosine", "final_factor": 0.0, "warmup": 0.2}
    # ramp 0 -> 1 over the first 20 %; then cosine over the remaining 80 %
    assert factors(config, [0, 0.05, 0.1, 0.2, 0.6, 1.0]) == pytest.approx([0, 0.25, 0.5, 1.0, 0.5, 0.0], abs=1e-12)
    step = {"name": "step", "milestones": [0.5], "factor": 0.1, "warmup": 0.5}
    assert factors(step, [0.25, 0.5, 0.74, 0.75]) == pytest.approx([0.5, 1.0, 1.0, 0.1])


@pytest.mark.parametrize(("shape", "drop"), [
    ("linear", lambda d: d),
    ("1-sqrt", math.sqrt),
    ("cosine", lambda d: (1 - math.cos(math.pi * d)) / 2),
])
def test_wsd_is_constant_then_decays_over_the_last_fraction(shape, drop):
    # decay over the last 25 % to 0.1: factor = 1 - 0.9 * drop((p - 0.75) / 0.25)
    config = {"name": "wsd", "decay": 0.25, "shape": shape, "final_factor": 0.1}
    got = factors(config, [0, 0.5, 0.75, 0.8, 0.875, 0.95, 1.0])
    assert got == pytest.approx([1, 1, 1, *(1 - 0.9 * drop(d) for d in (0.2, 0.5, 0.8)), 0.1])


def test_wsd_with_warmup_decays_over_the_last_fraction_of_the_rest():
    # warm-up over steps 0-120 of 1200; the remaining 1080 run WSD, decaying over their last 540 (from step 660),
    # 1-sqrt to zero: a quarter into the decay (step 795) the factor is 1 - sqrt(1/4)
    config = {"name": "wsd", "decay": 0.5, "shape": "1-sqrt", "final_factor": 0.0, "warmup": 0.1}
    schedule = lr_lambda(SCHEDULES.validate(config), T)
    got = [schedule(step) for step in (60, 120, 659, 795, 1200)]
    assert got == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0], abs=1e-12)


def test_zero_warmup_is_left_out_so_run_ids_do_not_change():
    assert SCHEDULES.validate({"name": "cosine", "final_factor": 0.0, "warmup": 0}) == {
        "name": "cosine", "final_factor": 0.0}
    assert SCHEDULES.validate({"name": "constant", "warmup": 0.1}) == {"name": "constant", "warmup": 0.1}


def test_lambda_lr_applies_the_factor_per_step():
    x = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([x], lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(SCHEDULES.validate({"name": "linear", "final_factor": 0.0, "end": 1.0}), 4))
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.5, 0.375, 0.25, 0.125])


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"name": "cosine", "final_factor": 1.5}, "schedule.final_factor"),
        ({"name": "exponential", "final_factor": 0.0}, "schedule.final_factor"),
        ({"name": "inverse_time", "final_factor": -1}, "schedule.final_factor"),
        ({"name": "sgdr", "first_period": 0.0, "period_factor": 2.0, "final_factor": 0.0}, "schedule.first_period"),
        ({"name": "sgdr", "first_period": 0.1, "period_factor": 0.5, "final_factor": 0.0}, "schedule.period_factor"),
        ({"name": "linear", "final_factor": 0.1, "end": 0}, "schedule.end"),
        ({"name": "cosine", "final_factor": 0.0, "warmup": 1.0}, "schedule.warmup"),
        ({"name": "constant", "warmup": "soon"}, "schedule.warmup"),
        ({"name": "step", "milestones": [0.5, 1.5], "factor": 0.1}, "schedule.milestones[1]"),
        ({"name": "wsd", "decay": 0.0, "shape": "linear", "final_factor": 0.0}, "schedule.decay"),
        ({"name": "wsd", "decay": 0.2, "shape": "sqrt", "final_factor": 0.0}, "schedule.shape"),
    ],
)
def test_bad_values_are_one_sentence_naming_the_key(config, key):
    with pytest.raises(SpecError) as error:
        SCHEDULES.validate(config)
    message = str(error.value)
    assert key in message and message.endswith(".") and message.count(". ") == 0
