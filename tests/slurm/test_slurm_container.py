"""Array tasks inside the real CPU image on the real Slurm: Slurm's variables and GPUs reach the job."""

from __future__ import annotations

import subprocess

from slurm_helpers import sacct, wait_until_final

from jobs.run_folder import read_json

RUNS = ("problem=quadratic_deep", "train.epochs=1", "seed=1,2", "logger=disabled")


def test_array_tasks_run_in_the_image_and_see_slurm_and_their_gpu(launch, results, cpu_image, optbench):
    status, out, err, sweep_dir = launch(*RUNS, "launcher.gpus_per_node=1", "container=apptainer",
                                         f"container.image={cpu_image}")
    assert status == 0, err
    views = wait_until_final(results, sweep_dir, timeout=300)
    assert [v.state for v in views] == ["completed", "completed"], [v.status.get("error") for v in views]
    for view in views:
        provenance = read_json(results / "runs" / view.run_id / "provenance.json")
        container = provenance["container"]
        assert container["running_in"] == str(cpu_image)
        assert container["nv"] is True and " --nv " in container["command"]  # the run asked for a GPU
        assert provenance["executable"] == "/opt/venv/bin/python3"
        seen = provenance["scheduler"]
        assert seen["CUDA_VISIBLE_DEVICES"] in ("0", "1")  # Slurm's GPU assignment, inside the container
        assert seen["SLURMD_NODENAME"] in ("n1", "n2")
        assert view.status["job_id"] == f"{seen['SLURM_ARRAY_JOB_ID']}_{seen['SLURM_ARRAY_TASK_ID']}"
        assert seen["SLURM_NTASKS"] == "1" and seen["SLURM_JOB_ID"]
    states = sacct(*(v.status["job_id"] for v in views))
    assert set(states.values()) == {"COMPLETED"}, states

    status, out, err = optbench("rerun", views[0].run_id, "--results", results)
    assert status == 0 and "identical" in out, out + err


def test_a_missing_image_submits_nothing(launch, results, tmp_path):
    before = set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split())
    status, out, err, sweep_dir = launch(*RUNS, "container=apptainer", f"container.image={tmp_path / 'gone.sif'}")
    assert status == 2 and "does not exist" in " ".join(err.split())
    assert sweep_dir is None and not (results / "runs").exists()
    after = set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split())
    assert not after - before
