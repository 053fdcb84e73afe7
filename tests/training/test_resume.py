"""Resume: a run SIGKILLed mid-epoch and resumed with `ftlab resume=<dir>` ends exactly as the same
run left alone (test metrics, history, metrics.csv to the bit); every refused resume exits with the
fix and leaves the folder untouched; a requeued SLURM job decides to continue its own run."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from support.cli import REPO, TINY, run_cli

BATCHES = 60  # per epoch: long enough that the kill lands mid-epoch
RUN = [*TINY, "dataset=acl_sup", "trainer.max_epochs=2", f"trainer.limit_train_batches={BATCHES}", "logger=csv",
       "trainer.log_every_n_steps=1", "checkpoint_every_n_steps=3", "save.model=false", "monitor=val/loss"]


def start(run_dir: Path) -> subprocess.Popen:
    """The CLI in the background, its output in a file beside the run (a full pipe would stall it)."""
    with open(f"{run_dir}.out", "w") as out:
        return subprocess.Popen([sys.executable, "-m", "ftlab", *RUN, f"hydra.run.dir={run_dir}"], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)


def output(run_dir: Path) -> str:
    return Path(f"{run_dir}.out").read_text()[-3000:]


def kill_mid_epoch(proc: subprocess.Popen, run_dir: Path) -> int:
    """SIGKILL once a step checkpoint exists and the logs reached it. The process is stopped while
    the folder is looked at, so what is seen is what the kill leaves."""
    ckpt, metrics = run_dir / "checkpoints" / "resume.ckpt", run_dir / "csv" / "metrics.csv"
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if ckpt.is_file() and metrics.is_file():
            os.kill(proc.pid, signal.SIGSTOP)
            step = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
            if step % BATCHES and str(step - 1) in {row["step"] for row in read_csv(metrics)}:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return step
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    pytest.fail(f"the run ended before it could be killed mid-epoch:\n{output(run_dir)}")


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and the same run killed mid-epoch (a pristine copy kept) then resumed."""
    root = tmp_path_factory.mktemp("resume")
    reference, killed = start(root / "reference"), start(root / "killed")
    killed_at = kill_mid_epoch(killed, root / "killed")
    assert reference.wait(timeout=300) == 0, output(root / "reference")
    shutil.copytree(root / "killed", root / "killed_copy")
    started = time.monotonic()
    resumed = run_cli(f"resume={root / 'killed'}")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    return {"root": root, "killed_at": killed_at, "resume_seconds": time.monotonic() - started, "proc": resumed}


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(runs):
    reference = json.loads((runs["root"] / "reference" / "results.json").read_text())
    resumed = json.loads((runs["root"] / "killed" / "results.json").read_text())
    print(f"\nkilled at step {runs['killed_at']} of {2 * BATCHES}; resumed from {resumed['resumed_from']}")
    print("reference test:", reference["test"], "\nresumed test:  ", resumed["test"])
    print("reference last val:", reference["history"][-1], "\nresumed last val:  ", resumed["history"][-1])
    assert resumed["resumed_from"] == {"checkpoint": "checkpoints/resume.ckpt", "global_step": runs["killed_at"]}
    assert 0 < runs["killed_at"] % BATCHES  # mid-epoch
    assert resumed["status"] == "completed" and "Traceback" not in runs["proc"].stderr
    assert resumed["test"] == reference["test"]
    assert resumed["history"] == reference["history"]  # val and train/ epoch means, to the bit
    assert [(r["epoch"], r["step"]) for r in resumed["history"]] == [(0, BATCHES), (1, 2 * BATCHES)]  # once each
    assert resumed["val"] == reference["val"] and resumed["best_checkpoint"] == reference["best_checkpoint"]
    assert resumed["timing"]["train_samples"] == reference["timing"]["train_samples"]
    assert resumed["overrides"] == reference["overrides"] and resumed["choices"] == reference["choices"]


def test_the_resumed_folder_looks_like_an_uninterrupted_one(runs):
    ref, res = runs["root"] / "reference", runs["root"] / "killed"
    assert [p.relative_to(res) for p in res.rglob("results.json")] == [Path("results.json")]
    assert sorted(p.name for p in (res / "checkpoints").iterdir()) == sorted(p.name for p in (ref / "checkpoints").iterdir())
    rows = read_csv(res / "csv" / "metrics.csv")
    assert rows == read_csv(ref / "csv" / "metrics.csv")  # continuous: every step once, same values
    train_steps = [r["step"] for r in rows if r["train/loss_step"]]
    assert train_steps == [str(s) for s in range(2 * BATCHES)]
    log = (res / "ftlab.log").read_text()
    assert "resuming" in log and log.count("data ready") == 2  # one log, both processes


def error_case(runs, name: str) -> tuple[Path, list[str]]:
    """A folder for one refused resume, and the fragments its message must hold."""
    root = runs["root"]
    folder = root / "cases" / name
    if name == "missing":
        return folder, [str(folder), "no run directory", "fix:"]
    if name == "not a run":
        folder.mkdir(parents=True)
        (folder / "notes.txt").write_text("hello")
        return folder, ["not an ftlab run", ".hydra/config.yaml"]
    if name == "completed":
        shutil.copytree(root / "reference", folder)
        return folder, ["already completed", "start a new run"]
    shutil.copytree(root / "killed_copy", folder)
    ckpt = folder / "checkpoints" / "resume.ckpt"
    if name == "no checkpoint":
        shutil.rmtree(folder / "checkpoints")
        return folder, ["no checkpoint to resume from", "run it again", "dataset=acl_sup"]
    if name == "truncated checkpoint":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
        return folder, ["resume.ckpt is not a readable checkpoint", "fix:"]
    if name == "not a torch file":
        ckpt.write_text("not a checkpoint")
        return folder, ["resume.ckpt is not a readable checkpoint"]
    if name == "another model":
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        state["state_dict"] = {"model.classifier.weight": torch.zeros(7, 9)}  # another head, no adapters
        torch.save(state, ckpt)
        return folder, ["resume.ckpt was not written by this run", "classifier.weight", "checkpoints it wrote"]
    if name == "overrides":
        return folder, ["cannot change optimizer.lr=0.1", "threads"]
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["missing", "not a run", "completed", "no checkpoint", "truncated checkpoint",
                                  "not a torch file", "another model", "overrides"])
def test_a_refused_resume_says_why_and_changes_nothing(runs, name):
    folder, expected = error_case(runs, name)
    before = snapshot(folder) if folder.exists() else None
    extra = ["optimizer.lr=0.1"] if name == "overrides" else []
    proc = run_cli(f"resume={folder}", *extra)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert "Traceback" not in output and "error:" in proc.stderr and "fix:" in proc.stderr, output[-3000:]
    for fragment in expected:
        assert fragment in proc.stderr, f"{fragment!r} missing from:\n{proc.stderr[-2000:]}"
    assert (snapshot(folder) if folder.exists() else None) == before


def test_a_requeued_slurm_job_continues_its_own_run(tmp_path, runs):
    from ftlab.resume import auto_resume

    killed, done = runs["root"] / "killed_copy", runs["root"] / "reference"
    assert auto_resume(killed, {}) == ("fresh", None)  # not requeued: a new run, as always
    action, resume = auto_resume(killed, {"SLURM_RESTART_COUNT": "1"})
    assert action == "resume" and resume.checkpoint == killed / "checkpoints" / "resume.ckpt"
    assert resume.global_step == runs["killed_at"]
    assert auto_resume(done, {"SLURM_RESTART_COUNT": "2"}) == ("done", None)
    (tmp_path / "checkpoints").mkdir()
    assert auto_resume(tmp_path, {"SLURM_RESTART_COUNT": "1"}) == ("fresh", None)  # killed before a checkpoint
    (tmp_path / "results.json").write_text('{"status": "failed"}')
    assert auto_resume(tmp_path, {"SLURM_RESTART_COUNT": "1"}) == ("fresh", None)


def test_a_requeued_job_run_again_by_hydra_continues_its_run(runs):
    """What submitit does after a requeue: the same Hydra job, in the same folder, SLURM_RESTART_COUNT set."""
    folder = runs["root"] / "requeued"
    shutil.copytree(runs["root"] / "killed_copy", folder)
    proc = run_cli(*RUN, f"hydra.run.dir={folder}", env={"SLURM_RESTART_COUNT": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    resumed = json.loads((folder / "results.json").read_text())
    reference = json.loads((runs["root"] / "reference" / "results.json").read_text())
    assert resumed["resumed_from"]["global_step"] == runs["killed_at"]
    assert resumed["test"] == reference["test"] and resumed["history"] == reference["history"]


def test_a_preset_reading_hydra_choices_resumes_outside_hydra(runs, tmp_path):
    """Presets set values from `${hydra:runtime.choices...}`; `ftlab resume=` has no Hydra job to ask
    (and leaves Hydra's resolver as it is: test_resume_state.py)."""
    from ftlab.resume import prepare

    folder = tmp_path / "preset"
    shutil.copytree(runs["root"] / "killed_copy", folder)
    config = folder / ".hydra" / "config.yaml"
    assert "  max_epochs: 2\n" in config.read_text()
    config.write_text(config.read_text().replace(
        "  max_epochs: 2\n", "  max_epochs: ${oc.select:study.epochs.${hydra:runtime.choices.dataset},2}\n"))
    cfg, resume = prepare([f"resume={folder}"])
    assert cfg.trainer.max_epochs == 2 and resume.global_step == runs["killed_at"]
    assert resume.choices["dataset"] == "acl_sup" and cfg.paths.output_dir == str(folder)


@pytest.mark.parametrize("at,overrides", [
    (13, ["checkpoint_every_n_steps=null"]),  # epoch 0's end, from last.ckpt
    (10, ["eval_every_n_steps=4", "checkpoint_every_n_steps=4"]),  # just after a mid-epoch validation
], ids=["epoch end", "after a mid-epoch validation"])
def test_resuming_from_other_points_gives_the_same_run(compose, monkeypatch, tmp_path, at, overrides):
    """In-process: the checkpoints as they stood when step `at` began are what a kill would leave."""
    from ftlab.callbacks import ResumeState
    from ftlab.resume import Resume, newest_checkpoint
    from ftlab.run import run

    hook = ResumeState.on_train_batch_start

    def snapshot_at(self, trainer, *args):
        hook(self, trainer, *args)
        if trainer.global_step == at and not (tmp_path / "snapshot").exists():
            shutil.copytree(tmp_path / "run" / "checkpoints", tmp_path / "snapshot")

    config = ("dataset=acl_sup", "trainer.max_epochs=2", "trainer.limit_train_batches=12", "monitor=val/loss", *overrides)
    monkeypatch.setattr(ResumeState, "on_train_batch_start", snapshot_at)
    reference = run(compose(*config))
    monkeypatch.setattr(ResumeState, "on_train_batch_start", hook)
    (tmp_path / "run").rename(tmp_path / "reference")
    shutil.copytree(tmp_path / "snapshot", tmp_path / "run" / "checkpoints")
    checkpoint, step = newest_checkpoint(tmp_path / "run")
    resumed = run(compose(*config), resume=Resume(tmp_path / "run", checkpoint, step))
    assert resumed["resumed_from"]["global_step"] == (12 if at == 13 else 8)
    assert resumed["test"] == reference["test"] and resumed["history"] == reference["history"]


def test_the_newest_checkpoint_wins(tmp_path):
    from ftlab.resume import newest_checkpoint

    (tmp_path / "checkpoints").mkdir()
    torch.save({"global_step": 40}, tmp_path / "checkpoints" / "last.ckpt")
    torch.save({"global_step": 45}, tmp_path / "checkpoints" / "resume.ckpt")
    assert newest_checkpoint(tmp_path) == (tmp_path / "checkpoints" / "resume.ckpt", 45)
    torch.save({"global_step": 50}, tmp_path / "checkpoints" / "last.ckpt")
    assert newest_checkpoint(tmp_path) == (tmp_path / "checkpoints" / "last.ckpt", 50)
