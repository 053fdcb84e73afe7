"""Clusters: hydra/launcher=local runs a sweep for real through submitit (one process per job);
hydra/launcher=slurm turns the config into the sbatch request (checked without SLURM). Tracking:
logger=wandb without wandb installed stops with the fix."""

from __future__ import annotations

import importlib.util
import json

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.utils import instantiate

from conftest import TINY, run_cli


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


def sbatch_request(cfg, monkeypatch) -> tuple[dict, str]:
    """What the submitit plugin hands to SLURM for this config: the executor's parameters and the
    sbatch script, captured where it would submit (no SLURM needed)."""
    import submitit

    captured = {}

    def capture(self, fn, *iterables):
        captured["params"] = {**self._executor.parameters, "jobs": len(list(zip(*iterables)))}
        captured["sbatch"] = self._executor._make_submission_file_text("python -m submitit.core._submit", "uid")
        return []

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # "srun is here"
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config, launcher.hydra_context, launcher.task_function = cfg, object(), lambda c: None
    launcher.launch([["seed=1"], ["seed=2"]], initial_job_idx=0)
    return captured["params"], captured["sbatch"]


def test_slurm_launcher_asks_for_what_the_trainer_uses(tmp_path, monkeypatch):
    cfg = compose_hydra("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.account=mylab",
                        "trainer.devices=4", "trainer.num_nodes=2", "hydra.launcher.timeout_min=90",
                        "hydra.launcher.mem_gb=64", tmp_path=tmp_path)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (4, 4, 2)
    params, sbatch = sbatch_request(cfg, monkeypatch)
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
