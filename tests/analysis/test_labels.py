"""One labeller and one flattener: every view names a setting the same way."""

from __future__ import annotations

import json

from analysis.collect import flatten_spec, runs_table
from analysis.labels import label_settings, setting_labels
from jobs.spec import flatten, unflatten
from orchestrator.sweep import expand


def flat(problem: str, optimizer: str, **params) -> dict:
    return {"problem.name": problem, "optimizer.name": optimizer, **{f"optimizer.{k}": v for k, v in params.items()}}


SETTINGS = {"a": flat("digits_mlp", "sgd", lr=0.1), "b": flat("digits_mlp", "sgd", lr=0.01),
            "c": flat("quadratic_deep", "sgd", lr=0.1), "d": flat("quadratic_deep", "pal", mu=0.1)}


def test_labels_name_what_varies_within_a_problem_and_the_problem_where_there_are_several():
    assert label_settings(SETTINGS) == {"a": "sgd lr=0.1", "b": "sgd lr=0.01", "c": "sgd", "d": "pal"}
    assert label_settings(SETTINGS, qualified=True) == {
        "a": "digits_mlp · sgd lr=0.1", "b": "digits_mlp · sgd lr=0.01", "c": "quadratic_deep · sgd",
        "d": "quadratic_deep · pal"}
    one_problem = {k: v for k, v in SETTINGS.items() if k in "ab"}
    assert label_settings(one_problem, qualified=True) == {"a": "sgd lr=0.1", "b": "sgd lr=0.01"}


def test_a_plugins_identity_shows_only_between_two_versions_of_it():
    mine = {"optimizer.target": "pkg:Mine"}
    settings = {"old": {**flat("q", "mine", lr=0.1), **mine, "optimizer.code_hash": "aaaa"},
                "new": {**flat("q", "mine", lr=0.1), **mine, "optimizer.code_hash": "bbbb"},
                "sgd": flat("q", "sgd", lr=0.1)}
    assert label_settings(settings) == {"old": "mine code_hash=aaaa", "new": "mine code_hash=bbbb", "sgd": "sgd"}
    del settings["new"]
    assert label_settings(settings) == {"old": "mine", "sgd": "sgd"}


def test_launch_status_and_the_aggregate_use_the_same_labels():
    sweep = expand(["problem=digits_mlp,quadratic_deep", "optimizer=sgd,adam", "seed=0,1",
                    "optimizer.lr=0.1,0.01"])
    entries = [{"run_id": r.run_id, "setting_id": r.setting_id, "spec": r.spec} for r in sweep.runs]
    table = runs_table(entries, ["pending"] * len(entries), [""] * len(entries))
    assert setting_labels(table).to_dict() == sweep.labels
    first = sweep.runs[0]
    assert sweep.describe(first) == f"digits_mlp · {sweep.labels[first.setting_id]} · seed=0"
    assert sweep.labels[first.setting_id] == "sgd lr=0.1"
    assert setting_labels(table, qualified=True)[first.setting_id] == "digits_mlp · sgd lr=0.1"


def test_one_flattener_with_table_cells_on_top():
    spec = expand(["optimizer=adam"]).runs[0].spec
    flattened = flatten(spec)
    assert flattened["optimizer.betas"] == [0.9, 0.999] and unflatten(flattened) == spec
    cells = flatten_spec(spec)
    assert set(cells) == set(flattened) and cells["optimizer.betas"] == json.dumps([0.9, 0.999])
    assert {k: v for k, v in cells.items() if k != "optimizer.betas"} == {
        k: v for k, v in flattened.items() if k != "optimizer.betas"}
