"""The fault matrix, through the real CLI on a tiny model: every way a run is stopped or starved ends
in a clear state (status, exit code) and `ftlab resume=` then ends with the metrics of the run that
was never stopped. Faults are injected at exact points by callbacks (tests/support/faults.py) and a
small tmpfs, never by timing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.cli import REPO, TINY, run_cli

# 2 epochs of 6 steps; validation every 4 steps (and at each epoch end); resume.ckpt every 2 steps
RUN = [*[o for o in TINY if not o.startswith(("trainer.max_epochs", "trainer.limit_train"))],
       "trainer.max_epochs=2", "trainer.limit_train_batches=6", "eval_every_n_steps=4",
       "checkpoint_every_n_steps=2", "dataset=acl_sup", "logger=csv", "save.model=false"]
ENV = {"PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{REPO}"}
SIGNALS = {"SIGTERM": (143, "interrupted"), "SIGINT": (130, "interrupted"), "SIGKILL": (-9, None)}
POINTS = {"mid-epoch": ("step", 3), "at a validation": ("validation", 4), "during a checkpoint write": ("checkpoint", 4)}


def results(run_dir: Path) -> dict | None:
    path = run_dir / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def outcome(run_dir: Path) -> tuple:
    """What must not change with a stop and a resume: the test metrics and every evaluation."""
    r = results(run_dir)
    return r["test"], [(h["step"], h.get("val/loss"), h.get("train/loss")) for h in r["history"]]


def stop_and_resume(root: Path, name: str, at: str, step: int) -> dict:
    run_dir = root / f"{name}-{at}"
    fault = [f"+callbacks.fault._target_=support.faults.SendSignal", f"+callbacks.fault.dirpath={run_dir}",
             f"+callbacks.fault.name={name}", f"+callbacks.fault.at={at}", f"+callbacks.fault.step={step}"]
    stopped = run_cli(*RUN, *fault, f"hydra.run.dir={run_dir}", env=ENV)
    record, saved = results(run_dir), (run_dir / "checkpoints" / "resume.ckpt").is_file()
    leftovers = [p.name for p in run_dir.rglob("*") if ".tmp" in p.name]
    resumed = run_cli(f"resume={run_dir}", env=ENV)
    return {"code": stopped.returncode, "output": stopped.stdout + stopped.stderr, "record": record,
            "saved": saved, "leftovers": leftovers, "resumed": resumed, "run_dir": run_dir}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """The uninterrupted run and the 9 stopped-and-resumed ones, two processes at a time."""
    root = tmp_path_factory.mktemp("faults")
    with ThreadPoolExecutor(2) as pool:
        baseline = pool.submit(run_cli, *RUN, f"hydra.run.dir={root / 'uninterrupted'}", env=ENV)
        cases = {(s, p): pool.submit(stop_and_resume, root, s, *POINTS[p]) for s in SIGNALS for p in POINTS}
        assert baseline.result().returncode == 0, baseline.result().stderr[-2000:]
        return outcome(root / "uninterrupted"), {k: f.result() for k, f in cases.items()}


@pytest.mark.parametrize("signal_name", list(SIGNALS))
@pytest.mark.parametrize("point", list(POINTS))
def test_a_stopped_run_says_so_and_resumes_exactly(matrix, signal_name, point):
    expected, cases = matrix
    case = cases[(signal_name, point)]
    code, status = SIGNALS[signal_name]
    assert case["code"] == code, case["output"][-2000:]
    assert "Traceback" not in case["output"], case["output"][-3000:]
    if status is None:  # SIGKILL: nothing can be written; the newest checkpoint is the state
        assert case["record"] is None
    else:
        record = case["record"]
        assert record["status"] == status and record["interrupted"]["signal"] == signal_name
        assert record["interrupted"]["resume"] == f"ftlab resume={case['run_dir']}"
        assert f"ftlab resume={case['run_dir']}" in case["output"]
    assert case["saved"]  # the state to resume from (SIGKILL: the one written before the kill)
    assert case["leftovers"] == []  # no half-written file left under any name
    assert case["resumed"].returncode == 0, case["resumed"].stderr[-2000:]
    assert results(case["run_dir"])["status"] == "completed"
    assert outcome(case["run_dir"]) == expected


def test_the_report_lists_an_interrupted_run_apart(matrix, tmp_path):
    _, cases = matrix
    folder = tmp_path / "runs"
    run_dir = folder / "stopped"
    shutil.copytree(cases[("SIGTERM", "mid-epoch")]["run_dir"], run_dir)
    record = results(run_dir)
    (run_dir / "results.json").write_text(json.dumps({**record, "status": "interrupted",
                                                      "interrupted": {"signal": "SIGTERM", "step": 3, "resume": "x"}}))
    proc = run_cli("report", str(folder))
    text = (folder / "report" / "report.md").read_text()
    assert "1 interrupted" in text and "Interrupted runs" in text and "SIGTERM" in text, proc.stdout + proc.stderr


# ---- starved: a full disk, a damaged cache, two cold caches at once
@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root): the disk-full cases need a small file system")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_at_a_checkpoint_is_a_user_error_and_resumes_after_space_is_freed(small_disk, tmp_path):
    run_dir = small_disk / "run"
    fill = ["+callbacks.fill._target_=support.faults.FillDisk", f"+callbacks.fill.dirpath={run_dir}",
            "+callbacks.fill.step=3"]
    proc = run_cli(*RUN, *fill, f"hydra.run.dir={run_dir}", env=ENV)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert f"no space left in {run_dir / 'checkpoints'}" in output and "MiB needed" in output and "free" in output
    assert "hydra.run.dir=" in output and "save.model=false" in output
    record = results(run_dir)
    assert record["status"] == "failed" if record else "results.json could not be written" in output
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]  # no partial file
    (run_dir / "filler").unlink()
    resumed = run_cli(f"resume={run_dir}", env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    baseline = tmp_path / "baseline"
    assert run_cli(*RUN, f"hydra.run.dir={baseline}", env=ENV).returncode == 0
    assert outcome(run_dir) == outcome(baseline)


def test_disk_full_at_the_cache_names_the_cache_folder(small_disk, tmp_path):
    (small_disk / "filler").write_bytes(b"\0" * (16 * 2**20 - 64 * 1024))
    proc = run_cli(*RUN, f"hydra.run.dir={tmp_path / 'run'}", env={**ENV, "FTLAB_CACHE_DIR": str(small_disk)})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert f"no space left in {small_disk / 'tokenized'}" in output and "FTLAB_CACHE_DIR" in output
    assert not [p for p in (small_disk / "tokenized").iterdir() if p.name.startswith(".tmp")]


def cache_entry(cache: Path) -> Path:
    (entry,) = [p for p in (cache / "tokenized").iterdir() if not p.name.startswith(".")]
    return entry


@pytest.mark.parametrize("damage", ["truncated arrow file", "garbled meta.json"])
def test_a_damaged_cache_entry_is_rebuilt_with_one_warning(tmp_path, damage):
    cache = tmp_path / "cache"
    env = {**ENV, "FTLAB_CACHE_DIR": str(cache)}
    assert run_cli(*RUN, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'a'}", env=env).returncode == 0
    entry = cache_entry(cache)
    if damage == "garbled meta.json":
        (entry / "meta.json").write_text("{not json")
    else:
        arrow = sorted((entry / "data" / "train").glob("*.arrow"))[0]
        arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 3])
    proc = run_cli(*RUN, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'b'}", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (proc.stdout + proc.stderr).count("cannot be read") == 1
    assert results(tmp_path / "b")["test"] == results(tmp_path / "a")["test"]
    assert cache_entry(cache) == entry and json.loads((entry / "meta.json").read_text())["split_sizes"]


def test_two_cold_cache_runs_at_once_both_finish_with_one_entry(tmp_path):
    cache = tmp_path / "cache"
    env = {**ENV, "FTLAB_CACHE_DIR": str(cache)}
    with ThreadPoolExecutor(2) as pool:
        procs = [pool.submit(run_cli, *RUN, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / name}", env=env)
                 for name in ("a", "b")]
        assert all(p.result().returncode == 0 for p in procs), [p.result().stderr[-1500:] for p in procs]
    assert len(list((cache / "tokenized").iterdir())) == 1
    assert results(tmp_path / "a")["test"] == results(tmp_path / "b")["test"]
