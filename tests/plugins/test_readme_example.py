"""The README's "Benchmark your optimizer" section, followed as written by a user with optbench installed."""

from __future__ import annotations

import re
import shlex

import pandas as pd
from plugin_support import REPO

from jobs.run_folder import read_json


def section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Benchmark your optimizer")
    return text[start:text.index("\n## ", start + 1)]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_the_readme_takes_a_new_user_from_twenty_lines_to_a_report(installed, elsewhere):
    text = section()
    (optimizer,) = blocks(text, "python")
    assert len(optimizer.strip().splitlines()) <= 25
    folder = elsewhere / "my_optimizers"
    folder.mkdir()
    (folder / "signum.py").write_text(optimizer)
    for config in blocks(text, "yaml"):
        path = re.match(r"# my_optimizers/(\S+)\n", config).group(1)
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(config)

    commands = [line.split("  #")[0] for line in blocks(text, "bash")[0].splitlines() if line.startswith("optbench")]
    assert [c.split()[1] for c in commands] == ["launch", "aggregate", "report"]
    for command in commands:
        done = installed.run(*shlex.split(command)[1:], cwd=folder)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"

    results = folder / "results"
    assert sorted(read_json(p / "status.json")["state"] for p in (results / "runs").iterdir()) == ["completed"] * 9
    (sweep_dir,) = (results / "sweeps").iterdir()
    summary = pd.read_csv(sweep_dir / "aggregate" / "summary.csv")
    assert sorted(summary["optimizer"]) == ["adam", "sgd", "signum"] and set(summary["runs"]) == {3}
    signum = summary[summary["optimizer"] == "signum"].iloc[0]
    assert signum["final_test_median"] > 0.5  # Signum learns the digits (chance is 0.1)
    assert "signum" in (sweep_dir / "report.html").read_text()
