"""Benchmark: expand and validate a 10,000-run sweep.

Baseline (measured in the same run): composing every run with Hydra's
compose API, the obvious implementation, timed on a sample of runs and
extrapolated to the whole grid. Ours: ``orchestrator.sweep.expand`` on the
whole grid, in a child process so its peak memory is its own.

Goal (issue 2): <= 3 s and <= 500 MB for 10,000 runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import goals

GRID = ["problem=quadratic_deep,digits_mlp", "optimizer=sgd,momentum,adam,nesterov",
        "optimizer.lr=logspace(1e-5,1e2,25)"]  # 2 x 4 x 25 = 200 settings
SEEDS = 50  # x 50 seeds = 10,000 runs
GOAL_SECONDS, GOAL_MB = 3.0, 500
BASELINE_SAMPLE = 100


def overrides() -> list[str]:
    return [*GRID, f"seed=range({SEEDS})"]


def ours() -> dict:
    started = time.perf_counter()
    from orchestrator.sweep import expand

    sweep = expand(overrides())
    seconds = time.perf_counter() - started
    return {"runs": len(sweep.runs), "seconds": seconds}


def baseline() -> dict:
    """Hydra compose + validation per run, on the first BASELINE_SAMPLE runs of the same grid."""
    import itertools

    from hydra import compose, initialize_config_dir

    from jobs.spec import validate_spec
    from orchestrator.config import default_conf_dir
    from orchestrator.sweep import logspace

    axes = [["quadratic_deep", "digits_mlp"], ["sgd", "momentum", "adam", "nesterov"],
            logspace(1e-5, 1e2, 25).list, range(SEEDS)]
    combos = list(itertools.islice(itertools.product(*axes), BASELINE_SAMPLE))
    with initialize_config_dir(config_dir=str(default_conf_dir()), version_base="1.3"):
        started = time.perf_counter()
        for problem, optimizer, lr, seed in combos:
            config = compose("config", [f"problem={problem}", f"optimizer={optimizer}",
                                        f"optimizer.lr={lr}", f"seed={seed}"])
            from omegaconf import OmegaConf

            data = OmegaConf.to_container(config, resolve=True)
            validate_spec({k: data[k] for k in ("problem", "optimizer", "schedule", "train", "seed",
                                                 "device", "precision")})
        per_run = (time.perf_counter() - started) / len(combos)
    return {"per_run": per_run, "seconds": per_run * 2 * 4 * 25 * SEEDS}


def measure(which: str) -> dict:
    """Run one measurement in a child process; add the peak resident memory of children so far.

    RUSAGE_CHILDREN reports the largest child yet, so measure ours first.
    """
    out = subprocess.run([sys.executable, __file__, "--child", which], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["ours", "baseline"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(ours() if args.child == "ours" else baseline()))
        return
    mine = measure("ours")
    base = measure("baseline")
    runs = f"{mine['runs']:,} runs"
    ok = goals.at_most(__file__, f"expand + validate {runs}: time", mine["seconds"], GOAL_SECONDS, "s",
                       note=f"Hydra compose per run: {base['seconds']:.0f} s")
    ok &= goals.at_most(__file__, f"expand + validate {runs}: peak memory", mine["peak_mb"], GOAL_MB, "MB")
    print(f"expand+validate {mine['runs']} runs: {mine['seconds']:.2f} s, peak {mine['peak_mb']:.0f} MB")
    print(f"baseline (Hydra compose per run): {base['per_run'] * 1000:.1f} ms/run -> {base['seconds']:.0f} s "
          f"for {mine['runs']} runs (extrapolated from {BASELINE_SAMPLE})")
    print(f"speed-up vs baseline: {base['seconds'] / mine['seconds']:.0f}x; goal <= {GOAL_SECONDS} s and "
          f"<= {GOAL_MB} MB: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
