"""The study presets in conf/sweep/ expand into the dissertation's grids."""

from __future__ import annotations

from collections import Counter

import pytest

from orchestrator.sweep import expand

PROBLEMS = {"quadratic_deep", "digits_mlp", "rosenbrock"}


@pytest.mark.parametrize(
    ("sweep", "optimizers", "settings_per_problem"),
    [
        ("pal_study_pal", {"pal"}, 3 * 3 * 2),
        ("pal_study_sgd", {"sgd"}, 4 * 3),
        ("pal_study_adam", {"adam"}, 5 * 2),
        ("pal_study_rmsprop", {"rmsprop"}, 4 * 2),
        ("pal_study_sls", {"sls"}, 2 * 2 * 2 * 2),
        ("labpal_study_labpal", {"labpal"}, 2 * 3 * 3 * 2 * 2),
        ("labpal_study_pls", {"pls"}, 2 * 2 * 4 * 3),
        ("labpal_study_gols_i", {"gols_i"}, 4 * 3 * 2),
        ("labpal_study_sls", {"sls"}, 4 * 2 * 2),
        ("labpal_study_sgd", {"sgd"}, 4 * 3),
    ],
)
def test_study_presets_expand_to_their_grids(sweep, optimizers, settings_per_problem):
    runs = expand([f"sweep={sweep}"]).runs
    assert {run.spec["optimizer"]["name"] for run in runs} == optimizers
    per_problem = Counter(run.spec["problem"]["name"] for run in runs)
    assert per_problem == dict.fromkeys(PROBLEMS, settings_per_problem * 3)  # 3 seeds
    assert len({run.setting_id for run in runs}) == settings_per_problem * len(PROBLEMS)


def test_the_sgd_baseline_of_the_labpal_study_uses_the_step_schedule():
    runs = expand(["sweep=labpal_study_sgd"]).runs
    assert {(r.spec["schedule"]["name"], tuple(r.spec["schedule"]["milestones"])) for r in runs} == {
        ("step", (0.5, 0.75))}
