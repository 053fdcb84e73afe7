"""The real entry point in a subprocess: a tiny run end to end, and every user mistake of the core
issue gives a short message with the fix, exit != 0, no traceback, and nothing earlier changed."""

import json
import os
import subprocess
import sys
from pathlib import Path


from support.cli import TINY, run_cli


def test_tiny_run_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*TINY, "dataset=acl_sup", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["choices"]["model"] == "tiny_bert" and results["choices"]["dataset"] == "acl_sup"
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run_dir / "checkpoints").glob("best-epoch*.ckpt"))
    assert "macro_f1" in proc.stdout and "results:" in proc.stdout


def test_a_machine_with_srun_gets_no_srun_hint(tmp_path):
    """Lightning tells every run outside a SLURM allocation on a machine with `srun` to prepend srun
    (twice); ftlab reaches SLURM through hydra/launcher=submitit_slurm, so the hint is wrong here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    proc = run_cli(*TINY, "trainer.max_epochs=1", "logger=none", f"hydra.run.dir={tmp_path / 'run'}",
                   env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "results:" in proc.stdout
    assert "`srun` command is available" not in proc.stdout + proc.stderr
    assert "prepend your python command" not in proc.stdout + proc.stderr


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "ftlab"
    assert script.is_file()
    proc = subprocess.run([str(script), "--cfg", "job"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "_target_: ftlab.models.backbone.Backbone" in proc.stdout


# every bad input through the CLI (unknown options, wrong types, out-of-range values, broken data
# files, CUDA-only options on CPU, ...): tests/cli/test_bad_inputs.py


def test_failed_run_leaves_earlier_outputs_untouched(tmp_path):
    """A mistake the config shows is refused before the run folder exists; one only the data shows
    (a missing file) fails in a folder of its own, with a failed results.json."""
    earlier = tmp_path / "outputs" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "results.json").write_text('{"status": "completed"}')
    before = (earlier / "results.json").stat().st_mtime_ns
    env = {"PYTHONPATH": str(Path(__file__).parents[2])}
    refused = run_cli(*TINY, "peft.r=0", cwd=tmp_path, env=env)
    assert refused.returncode == 1 and not (tmp_path / "outputs" / "runs").exists()
    failed_run = run_cli(*TINY, "dataset=acl_sup", f"paths.data_dir={tmp_path / 'nodata'}", cwd=tmp_path, env=env)
    assert failed_run.returncode == 1
    assert (earlier / "results.json").read_text() == '{"status": "completed"}'
    assert (earlier / "results.json").stat().st_mtime_ns == before
    failed = list((tmp_path / "outputs" / "runs").glob("*/*/results.json"))
    assert len(failed) == 1 and json.loads(failed[0].read_text())["status"] == "failed"


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    """The run folder carries microseconds: two jobs started together never share or overwrite one."""
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    args = [sys.executable, "-m", "ftlab", *TINY, "dataset=acl_sup", "save.model=false"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    results = sorted((tmp_path / "outputs" / "runs").glob("*/*/results.json"))
    assert len(results) == 2 and results[0].parent != results[1].parent
    assert all(json.loads(r.read_text())["status"] == "completed" for r in results)


def test_the_forked_command_is_the_command(tmp_path):
    """tests/support/cli_zygote.py, which most tests' `run_cli` goes through, against a new interpreter:
    the same exit code and output for a refusal, a Hydra error and a finished run (its results and
    metrics table; timings and log lines aside)."""
    import re

    cases = [[*TINY, "peft.r=0"], ["--cfg", "job", "peft=full", "seed=3"], ["nope=1"]]
    for args in cases:
        forked, fresh = run_cli(*args, cwd=tmp_path), run_cli(*args, cwd=tmp_path, fresh=True)
        assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr), args
    runs = {}
    for name, fresh in (("forked", False), ("fresh", True)):
        proc = run_cli(*TINY, "dataset=acl_sup", "logger=none", f"hydra.run.dir={tmp_path / name}", fresh=fresh)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())
        table = [ln for ln in proc.stdout.splitlines() if not ln.startswith("[")]  # the metrics table, not the log
        runs[name]["table"] = re.sub(r"[\d.]+s|[\d.]+ samples/s|[\d.]+ GiB|/\S+", "#", "\n".join(table))
    assert runs["forked"]["test"] == runs["fresh"]["test"] and runs["forked"]["history"] == runs["fresh"]["history"]
    assert runs["forked"]["table"] == runs["fresh"]["table"]
