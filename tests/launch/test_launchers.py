"""Clusters: hydra/launcher=local runs a sweep for real through submitit (one process per job);
hydra/launcher=slurm turns the config into the sbatch request, fitted to a partition (described
here, so no SLURM is needed; tests/launch/test_slurm.py runs a real cluster), and refuses what can never
run. Tracking: logger=wandb without wandb installed stops with the fix."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.utils import instantiate

from support.cli import TINY, run_cli
from ftlab.errors import UserError
from ftlab.launchers import partition as slurm_partition
from ftlab.launchers.partition import Node, Partition

GPU_PARTITION = Partition("gpu", [Node(f"g{i}", 64, 256 * 1024, 4) for i in range(8)], others=["cpu"])
CPU_PARTITION = Partition("debug", [Node("vm", 2, 24105, 0)], max_time_min=60)


def test_local_launcher_runs_a_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "hydra/launcher=local", "seed=1,2", *TINY, "dataset=acl_sup", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "Submitit 'local' sweep output dir" in proc.stdout + proc.stderr
    found = sorted(sweep.glob("*/results.json"))
    assert len(found) == 2 and found[0].parent != found[1].parent
    results = [json.loads(p.read_text()) for p in found]
    assert [r["status"] for r in results] == ["completed", "completed"]
    assert sorted(r["seed"] for r in results) == [1, 2]
    assert {r["choices"]["dataset"] for r in results} == {"acl_sup"}
    # each job ran in its own submitit process, its log beside the pickled job
    assert len(list((sweep / ".submitit").glob("*/*_log.out"))) == 2


def compose_hydra(*overrides: str, tmp_path):
    from ftlab.config import CONF_DIR
    from ftlab.config import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name="config", return_hydra_config=True, overrides=[
            f"hydra.sweep.dir={tmp_path / 'sweep'}", f"paths.output_dir={tmp_path / 'run'}", *overrides])


def sbatch_request(cfg, monkeypatch, partition: Partition = GPU_PARTITION) -> tuple[dict, str]:
    """What the launcher hands to SLURM for this config, fitted to `partition` as the sweep's checks
    fit it: the executor's parameters and the sbatch script, captured where it would submit."""
    import submitit

    from ftlab.launchers import slurm
    from ftlab.launchers.checks import SlurmChecks

    captured = {}

    def capture(self, fn, *iterables):
        captured["params"] = {**self._executor.parameters, "jobs": len(list(zip(*iterables)))}
        captured["sbatch"] = self._executor._make_submission_file_text("python -m submitit.core._submit", "uid")
        return []

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # "srun is here"
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    monkeypatch.setattr(slurm_partition, "query", lambda name: partition)
    monkeypatch.setattr(slurm, "accounting_answers", lambda: True)
    SlurmChecks().prepare(cfg)
    launcher = instantiate(cfg.hydra.launcher, _target_=slurm.SlurmLauncher)
    launcher.config, launcher.hydra_context, launcher.task_function = cfg, object(), lambda c: None
    launcher.launch([["seed=1"], ["seed=2"]], initial_job_idx=0)
    return captured["params"], captured["sbatch"]


def test_slurm_launcher_asks_for_what_the_trainer_uses(tmp_path, monkeypatch):
    cfg = compose_hydra("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.account=mylab",
                        "trainer.devices=4", "trainer.num_nodes=2", "hydra.launcher.timeout_min=90",
                        "hydra.launcher.mem_gb=64", tmp_path=tmp_path)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    params, sbatch = sbatch_request(cfg, monkeypatch)
    launcher = cfg.hydra.launcher  # as fitted: GPUs follow the trainer on a partition that has them
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (4, 4, 2)
    assert params["jobs"] == 2  # one SLURM job (array task) per sweep point
    assert (params["partition"], params["account"], params["gpus_per_node"], params["ntasks_per_node"]) == ("gpu", "mylab", 4, 4)
    for line in ("--partition=gpu", "--account=mylab", "--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4",
                 "--time=90", "--mem=64GB", "--cpus-per-task=4"):
        assert f"#SBATCH {line}" in sbatch, (line, sbatch)


def test_slurm_defaults_one_gpu_per_job(tmp_path, monkeypatch):
    cfg = compose_hydra("hydra/launcher=slurm", tmp_path=tmp_path)
    params, sbatch = sbatch_request(cfg, monkeypatch)
    for line in ("--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=1", "--time=240"):
        assert f"#SBATCH {line}" in sbatch, (line, sbatch)
    assert "--partition" not in sbatch and "--account" not in sbatch  # the cluster's defaults


def test_slurm_on_a_cpu_partition_asks_for_no_gpu_and_what_fits(tmp_path, monkeypatch):
    """The default request on a small CPU partition: no gres (sbatch would refuse any), and auto
    CPUs, memory and time that fit its node."""
    cfg = compose_hydra("hydra/launcher=slurm", tmp_path=tmp_path)
    params, sbatch = sbatch_request(cfg, monkeypatch, CPU_PARTITION)
    assert "--gpus-per-node" not in sbatch and "--gres" not in sbatch
    for line in ("--cpus-per-task=2", "--mem=23GB", "--time=60", "--ntasks-per-node=1"):
        assert f"#SBATCH {line}" in sbatch, (line, sbatch)
    one_cpu = compose_hydra("hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", tmp_path=tmp_path)
    _, sbatch = sbatch_request(one_cpu, monkeypatch, CPU_PARTITION)
    assert "#SBATCH --mem=11GB" in sbatch  # memory in proportion to the CPUs taken: two such jobs share the node


def request(**changes) -> dict:
    return {"cpus_per_task": "auto", "mem_gb": "auto", "gpus_per_node": "auto", "timeout_min": "auto",
            "tasks_per_node": 1, "nodes": 1, **changes}


@pytest.mark.parametrize("changes, accelerator, parts", [
    ({"cpus_per_task": 3}, "cpu", ["3 CPUs per node asked", "a node has 2", "hydra.launcher.cpus_per_task=2"]),
    ({"mem_gb": 64}, "cpu", ["64 GB per node asked", "a node has 23.5 GB", "hydra.launcher.mem_gb=23"]),
    ({"timeout_min": 90}, "cpu", ["90 min asked", "allows 60", "hydra.launcher.timeout_min=60"]),
    ({}, "gpu", ["1 GPU(s) per node asked, a node has 0", "trainer.accelerator=cpu"]),
    ({"gpus_per_node": 2}, "cpu", ["2 GPU(s) per node asked", "hydra.launcher.gpus_per_node=null"]),
    ({"nodes": 2, "cpus_per_task": 1}, "cpu", ["2 node(s) asked, 1 can give", "trainer.num_nodes=1"]),
    ({"tasks_per_node": 3, "cpus_per_task": 1}, "cpu", ["3 CPUs per node asked (1 per task x 3 task(s))",
                                                         "at most 2 tasks per node"]),
])
def test_a_request_no_node_can_give_is_refused_with_the_numbers_and_the_fix(changes, accelerator, parts):
    with pytest.raises(UserError) as err:
        slurm_partition.fit(request(**changes), CPU_PARTITION, accelerator, 1)
    message = str(err.value)
    assert "can never run on partition debug (1 node(s), up to 2 CPUs, 23.5 GB and 0 GPU(s) per node" in message
    for part in parts:
        assert part in message, (part, message)
    assert message.endswith("nothing was submitted")


def test_auto_takes_the_defaults_where_they_fit_and_explicit_values_stay():
    assert slurm_partition.fit(request(), GPU_PARTITION, "auto", 2) == request(
        cpus_per_task=4, mem_gb=32, gpus_per_node=2, timeout_min=240)
    assert slurm_partition.fit(request(cpus_per_task=8, mem_gb=None, timeout_min=30), GPU_PARTITION, "cpu", 1) == \
        request(cpus_per_task=8, mem_gb=None, gpus_per_node=None, timeout_min=30)
    with pytest.raises(UserError, match=r"hydra.launcher.cpus_per_task='many': expected auto, null or a positive"):
        slurm_partition.fit(request(cpus_per_task="many"), GPU_PARTITION)


def test_a_sweep_asking_for_different_resources_per_point_is_refused():
    from ftlab.launchers.checks import one_request

    one_request([["seed=1", "trainer.devices=2"], ["seed=2", "trainer.devices=2"]])  # one request: fine
    with pytest.raises(UserError, match=r"different resources \(trainer.devices: 1, 2\)"):
        one_request([["trainer.devices=1"], ["trainer.devices=2"]])


def test_slurm_commands_missing_and_durations_and_gres(monkeypatch):
    monkeypatch.setattr(slurm_partition.shutil, "which", lambda name: None if name == "sinfo" else f"/bin/{name}")
    with pytest.raises(UserError, match="sinfo is not on PATH") as err:
        slurm_partition.query("debug")
    assert "tools/slurm_cluster.sh start" in err.value.fix and "hydra/launcher=local" in err.value.fix
    minutes = slurm_partition.minutes
    assert [minutes(v) for v in ("UNLIMITED", "30", "5:30", "01:00:00", "2-00:00:00", "1-12")] == \
        [math.inf, 30, 5.5, 60, 2880, 2160]
    gpus = slurm_partition.gpu_count
    assert [gpus(g) for g in ("(null)", "gpu:4", "gpu:a100:4(S:0-1)", "gpu:a100:2,gpu:v100:2,shard:8")] == [0, 4, 4, 4]


def test_without_slurm_commands_a_slurm_sweep_is_refused(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent)}  # the venv only: no sbatch, sinfo, ...
    proc = run_cli("-m", "hydra/launcher=slurm", *TINY, "dataset=acl_sup", "seed=1,2",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out[-3000:]
    assert "needs SLURM's commands, and sbatch, scontrol, sinfo, sacct are not on PATH" in out
    assert "tools/slurm_cluster.sh start" in out and not (tmp_path / "sweep").exists()  # nothing left behind


def test_local_launcher_config(tmp_path):
    launcher = compose_hydra("hydra/launcher=local", "trainer.devices=1", tmp_path=tmp_path).hydra.launcher
    assert launcher._target_.endswith("LocalLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_wandb_logger_without_wandb_stops_with_the_fix(compose):
    from ftlab.errors import UserError
    from ftlab.run import run

    cfg = compose("logger=wandb", "dataset=acl_sup", "trainer.fast_dev_run=true")
    with pytest.raises(UserError) as err:
        run(cfg)
    assert "pip install wandb" in str(err.value)


def test_slurm_jobs_are_warned_and_requeued(tmp_path, monkeypatch):
    """The sbatch request asks for the warning signal before the time limit, and submitit may requeue
    (the requeued job resumes: tests/launch/test_slurm.py runs it on a real cluster)."""
    cfg = compose_hydra("hydra/launcher=slurm", "hydra.launcher.partition=gpu", tmp_path=tmp_path)
    _, sbatch = sbatch_request(cfg, monkeypatch)
    assert "#SBATCH --signal=USR2@120" in sbatch
    assert cfg.hydra.launcher.max_num_timeout >= 1
