"""Options may stand anywhere among a verb's positionals (overrides, sweeps, run ids), as users type them."""

from __future__ import annotations

import itertools

import pytest

from orchestrator.cli import _parser

#: verb → (its positionals, its options as they are typed); nested verbs (export deepobs, image build) keep
#: their sub-verb first and mix the rest.
VERBS = {
    "launch": (["sweep=smoke", "logger=disabled"], [["--dry-run"], ["--results", "R"], ["--config-dir", "C"]]),
    "tune": (["problem=digits_mlp", "optimizer=sgd"], [["--seeds", "3"], ["--criterion", "best_valid"],
                                                      ["--dry-run"]]),
    "aggregate": (["s1", "s2"], [["--results", "R"], ["--quantiles", "0.1,0.9"], ["--criterion", "best_valid"]]),
    "report": (["s1", "s2"], [["--results", "R"], ["--highlight", "signum"]]),
    "plot": (["s1", "s2"], [["--kind", "curves"], ["--output", "f.pdf"], ["--width", "double"]]),
    "status": (["s1"], [["--all"], ["--results", "R"], ["--watch", "3"]]),
    "resume": (["s1"], [["--results", "R"]]),
    "cancel": (["s1", "0123456789ab", "ba9876543210"], [["--results", "R"]]),
    "logs": (["0123456789ab"], [["-n", "5"], ["--follow"], ["--results", "R"]]),
    "sync": (["s1"], [["--dry-run"], ["--results", "R"]]),
    "rerun": (["0123456789ab"], [["--force"], ["--results", "R"]]),
    "export deepobs": (["s1"], [["--output", "out"], ["--results", "R"]]),
}


def placements(positionals: list[str], options: list[list[str]]):
    """Every way to put each whole option before, between or after the positionals (keeping their order)."""
    slots = len(positionals) + 1
    for where in itertools.product(range(slots), repeat=len(options)):
        argv: list[str] = []
        for slot in range(slots):
            for option, at in zip(options, where, strict=True):
                if at == slot:
                    argv += option
            if slot < len(positionals):
                argv.append(positionals[slot])
        yield argv


@pytest.mark.parametrize("verb", VERBS)
def test_options_before_between_and_after_the_positionals_parse_alike(verb):
    positionals, options = VERBS[verb]
    parser = _parser()
    results = {}
    for argv in placements(positionals, options):
        parsed = vars(parser.parse_args([*verb.split(), *argv]))
        results[tuple(argv)] = parsed
    first = next(iter(results.values()))
    assert len(results) >= 2
    for argv, parsed in results.items():
        assert parsed == first, f"optbench {verb} {' '.join(argv)}"


def test_a_verb_reports_what_it_does_not_know_with_its_own_usage(capsys):
    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(["launch", "sweep=smoke", "--bogus", "logger=disabled"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.startswith("usage: optbench launch") and "unrecognized arguments: --bogus" in err


def test_overrides_after_an_option_take_effect(optbench, results):
    """The issue's ``launch sweep=smoke --dry-run logger=disabled``, and an override that changes the runs."""
    outs = []
    for argv in (["sweep=smoke", "--dry-run", "logger=disabled", "optimizer=sgd"],
                 ["--dry-run", "sweep=smoke", "logger=disabled", "optimizer=sgd"],
                 ["sweep=smoke", "logger=disabled", "optimizer=sgd", "--dry-run"]):
        code, out, err = optbench("launch", *argv, "--results", results)
        assert code == 0, err
        outs.append(out)
    assert "would start 6 of 6 runs" in outs[0]  # optimizer=sgd, after --dry-run, narrowed the 18 runs to 6
    assert outs[0] == outs[1] == outs[2]
    assert not (results / "sweeps").exists()
