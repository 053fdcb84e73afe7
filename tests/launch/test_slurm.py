"""hydra/launcher=slurm on a real one-node SLURM cluster, started by the project's own
tools/slurm_cluster.sh (root; it installs the packages when missing): a sweep as one job array with
a point that fails at run time, `ftlab report` on it, a job requeued mid-run (`scontrol requeue`)
and one signalled before its time limit, both resuming from their own checkpoint to the
uninterrupted run's metrics, a job cancelled from outside, DDP as one job with two tasks, an Optuna
search with its trials as jobs, and requests refused before submission. Skipped, with the reason, where the cluster cannot start
(not root, no apt-get, the script fails), unless FTLAB_REQUIRE_SLURM=1 (.ci/run sets it).

Every scenario is started at once by the `ran` fixture and each test checks its own: most of the
time is SLURM's (a requeued job waits ~35 s to run again), so side by side the module takes about
as long as its longest scenario. The node gets 4 CPUs whatever the machine has (SLURM_NODE_CPUS):
the jobs mostly wait, and a frozen one (below) must not keep the others queued."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.cli import REPO, TINY, run_cli
from test_ddp import COMMON as DDP_COMMON

SCRIPT = REPO / "tools" / "slurm_cluster.sh"
LAUNCH = ["-m", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
          "hydra.launcher.timeout_min=5"]
SWEEP = [*TINY, "dataset=acl_sup", "peft=houlsby", "peft.reduction_factor=2,4,8,64"]  # 64 > hidden size 32
STEPS = 300  # 3 epochs of 100 batches: long enough to be interrupted mid-run
RESUMABLE = [*TINY, "dataset=acl_sup", "trainer.max_epochs=3", "trainer.limit_train_batches=100", "logger=csv",
             "checkpoint_every_n_steps=3", "save.model=false", "monitor=val/loss"]
USR2_PENDING = 1 << (signal.SIGUSR2 - 1)
LAUNCHED: list[Sweep] = []  # ended by the `ran` fixture, with their jobs, if a scenario gave up on them


def slurm(*args: str) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=True).stdout


def wait_for(what: str, check, timeout: float = 400, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def cannot_run(reason: str):
    """Skip, with the reason; FTLAB_REQUIRE_SLURM=1 (CI: root on Debian) makes it a failure."""
    (pytest.fail if os.environ.get("FTLAB_REQUIRE_SLURM") == "1" else pytest.skip)(reason)


@pytest.fixture(scope="session")
def cluster():
    if os.geteuid() != 0:
        cannot_run("SLURM tests need root: tools/slurm_cluster.sh installs packages and starts daemons")
    if not any(os.access(f"/usr/bin/{c}", os.X_OK) for c in ("apt-get", "sbatch")):
        cannot_run("SLURM tests need apt-get (Debian/Ubuntu) to install SLURM, or SLURM installed")
    was_up = subprocess.run([SCRIPT, "status"], capture_output=True).returncode == 0
    started = time.monotonic()
    env = {**os.environ, "SLURM_NODE_CPUS": str(max(4, os.cpu_count() or 1))}
    proc = subprocess.run([SCRIPT, "start"], capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        cannot_run(f"tools/slurm_cluster.sh start failed: {(proc.stderr or proc.stdout).strip()[-600:]}")
    print(f"\ncluster up in {time.monotonic() - started:.1f}s: {proc.stderr.strip()}")
    yield
    if not was_up:
        subprocess.run([SCRIPT, "stop"], capture_output=True, timeout=120)


class Sweep:
    """`python -m ftlab -m hydra/launcher=slurm ...` in the background, its output in <dir>.out."""

    def __init__(self, root: Path, name: str, *args: str):
        self.dir, self.started = root / name, time.monotonic()
        with open(f"{self.dir}.out", "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "ftlab", *LAUNCH, *args, f"hydra.sweep.dir={self.dir}"],
                                         cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        LAUNCHED.append(self)

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            jobs = {p.parent.name.split("_")[0] for p in (self.dir / ".submitit").glob("*/*_submitted.pkl")}
            subprocess.run(["scancel", *jobs], capture_output=True) if jobs else None

    def job(self) -> str:
        """The SLURM id of the sweep's first job (<array>_<index>, or <id> for a one-job sweep)."""
        found = lambda: sorted(p.parent.name for p in (self.dir / ".submitit").glob("*/*_submitted.pkl"))
        return wait_for(f"{self.dir.name}'s job", lambda: self.dir.is_dir() and found())[0]

    def run_dir(self) -> Path:
        return wait_for(f"{self.dir.name}'s run folder", lambda: next(self.dir.glob("0_*/ftlab.log"), None)).parent

    def finish(self, timeout: float = 500) -> dict:
        rc = self.proc.wait(timeout=timeout)
        return {"rc": rc, "out": Path(f"{self.dir}.out").read_text(), "seconds": time.monotonic() - self.started,
                "dir": self.dir, "ended": time.monotonic()}


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def job_process(job: str) -> int:
    """The pid of the job's Python: task 0 of step 0 (the batch step runs the srun that starts it)."""
    rows = [row.split() for row in slurm("scontrol", "listpids", job).splitlines()[1:]]
    return next((int(row[0]) for row in rows if row[2:4] == ["0", "0"]), 0)


def in_queue(job: str) -> bool:
    """Whether the job is still pending or running. A requeued job's next attempt may wait behind the
    other scenarios' jobs for a CPU, so the wait for it is bounded by the job leaving the queue."""
    proc = subprocess.run(["squeue", "--noheader", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=60)
    return proc.returncode == 0 and bool(proc.stdout.strip())  # squeue refuses an id it has forgotten


def process_state(pid: int) -> tuple[str, int]:
    """(state letter, pending signal mask) of a process; ("", 0) once it is gone."""
    try:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except OSError:
        return "", 0
    return status["State"].strip()[:1], int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)


def sweep_with_a_failing_point(root):
    ran = Sweep(root, "sweep", *SWEEP).finish()
    ran["report"] = run_cli("report", str(ran["dir"]), "--no-plots")
    return ran


def search(root):
    """An Optuna search whose trials are SLURM jobs, two at a time; seed 6 draws the reduction factor
    the model refuses (64 > hidden size 32) for trial 2 only."""
    ran = Sweep(root, "search", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2",
                "seed=6", *TINY, "dataset=acl_sup", "peft=houlsby", "peft.reduction_factor=choice(4, 64)").finish()
    import optuna

    study = optuna.load_study(study_name="ftlab", storage=f"sqlite:///{ran['dir'] / 'optuna.db'}")
    return {**ran, "trials": study.get_trials()}


def requeue(job: str) -> dict:
    """`scontrol requeue`: SLURM stops the job (SIGTERM) and runs it again."""
    slurm("scontrol", "requeue", job)
    return {}


def freeze_until_signalled(job: str) -> dict:
    """A 2-minute limit with --signal=USR2@45: SLURM signals 45-75 s into the job (it checks limits
    every 30 s). The job is frozen (SIGSTOP) meanwhile, so that it is still mid-run when the signal
    comes without training for a minute; SLURM sends SIGCONT with its signal (the job may be running
    again, or gone, when this looks), and submitit requeues it as timed out."""
    pid = wait_for("the job's process", lambda: job_process(job))
    os.kill(pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        wait_for("the job to stop", lambda: process_state(pid)[0] in ("T", ""), every=0.01)
        wait_for("SLURM's USR2", lambda: process_state(pid)[0] != "T" or process_state(pid)[1] & USR2_PENDING,
                 timeout=150, every=0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    return {"frozen_for": time.monotonic() - stopped_at}


def interrupted(root, name, interrupt, *args):
    """A job interrupted once it has a step checkpoint, until its next attempt resumes and ends."""
    sweep = Sweep(root, name, *RESUMABLE, *args)
    job, run_dir = sweep.job(), sweep.run_dir()
    wait_for("a step checkpoint", lambda: (run_dir / "checkpoints" / "resume.ckpt").is_file(), every=0.05)
    facts, asked = interrupt(job), time.monotonic()
    resumed = lambda: "resuming" in (run_dir / "ftlab.log").read_text()
    wait_for("the resumed job", lambda: resumed() or not in_queue(job), timeout=900, every=0.5)
    assert resumed(), f"job {job} left the queue without resuming: {(run_dir / 'ftlab.log').read_text()[-2000:]}"
    facts["latency"] = time.monotonic() - asked  # to the next attempt's "resuming" line
    return {**sweep.finish(), **facts, "job": job, "run_dir": run_dir}


def cancelled(root):
    sweep = Sweep(root, "cancelled", *RESUMABLE, "trainer.max_epochs=50")
    job, run_dir = sweep.job(), sweep.run_dir()
    slurm("scancel", job)
    asked = time.monotonic()
    return {**sweep.finish(timeout=240), "job": job, "run_dir": run_dir, "asked": asked}


def ddp(root):
    sweep = Sweep(root, "ddp", *DDP_COMMON, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                  "data.batch_size=4", "data.eval_batch_size=8", "hydra.launcher.mem_gb=4")
    return {**sweep.finish(), "job": sweep.job()}


def local(root, name, *args):
    proc = run_cli(*args, f"hydra.run.dir={root / name}", timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return results(root / name)


def refused(root, name, *args):
    """A sweep refused before submission: its own job name, to show SLURM never saw a job of it."""
    proc = run_cli(*LAUNCH, *TINY, "dataset=acl_sup", f"hydra.sweep.dir={root / name}", f"hydra.job.name={name}", *args)
    jobs = slurm("sacct", "--noheader", "-X", f"--name={name}", "-S", "now-10minutes", "-o", "JobID")
    return {"proc": proc, "folder": (root / name).exists(), "jobs": jobs.strip()}


class Ran(dict):
    """Each scenario's outcome; a scenario that raised raises in the test that looks at it."""

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if isinstance(value, BaseException):
            raise value
        return value


@pytest.fixture(scope="module")
def ran(cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    cpus = int(slurm("sinfo", "--noheader", "--Node", "-o", "%c").split()[0])
    started = time.monotonic()
    scenarios = {
        "signalled": (interrupted, root, "signalled", freeze_until_signalled, "hydra.launcher.timeout_min=2",
                      "hydra.launcher.signal_delay_s=45"),
        "requeued": (interrupted, root, "requeued", requeue), "cancelled": (cancelled, root),
        "sweep": (sweep_with_a_failing_point, root), "ddp": (ddp, root), "search": (search, root),
        "reference": (local, root, "reference", *RESUMABLE),
        "ddp_single": (local, root, "ddp_single", *DDP_COMMON, "data.batch_size=8", "data.eval_batch_size=16"),
        "no_partition": (refused, root, "no_partition", "seed=1,2", "hydra.launcher.partition=nope"),
        "too_big": (refused, root, "too_big", "seed=1,2", f"hydra.launcher.cpus_per_task={cpus + 1}",
                    "hydra.launcher.mem_gb=100000", "hydra.launcher.timeout_min=100000", "hydra.launcher.gpus_per_node=1"),
        "dry_run": (refused, root, "dry_run", "peft=houlsby", "peft.reduction_factor=4,64", "hydra.launcher.dry_run=true"),
    }
    first = ("signalled", "requeued", "cancelled", "sweep", "ddp", "search")  # SLURM's waits start as soon as they submit
    try:
        with ThreadPoolExecutor(len(scenarios)) as pool:
            futures = {name: pool.submit(*scenarios[name]) for name in first}
            with contextlib.suppress(AssertionError):  # the CPU-only rest starts once those are queued
                wait_for("the sweeps to submit", lambda: len(LAUNCHED) == len(first) and all(
                    any((s.dir / ".submitit").glob("*/*_submitted.pkl")) for s in LAUNCHED), timeout=180, every=1)
            futures.update({name: pool.submit(*spec) for name, spec in scenarios.items() if name not in first})
            out = {name: future.exception() or future.result() for name, future in futures.items()}
    finally:
        for sweep in LAUNCHED:
            sweep.end()
    print(f"\nSLURM scenarios, side by side, in {time.monotonic() - started:.0f}s: " + ", ".join(
        f"{name} {v['seconds']:.0f}s" for name, v in out.items() if isinstance(v, dict) and "seconds" in v))
    return Ran({**out, "cpus": cpus})


def test_a_sweep_is_one_job_array_and_a_failing_point_fails_alone(ran):
    sweep = ran["sweep"]
    assert sweep["rc"] == 1 and "Traceback" not in sweep["out"], sweep["out"][-3000:]
    assert "1 job(s) failed" in sweep["out"] and "peft.reduction_factor=64 is larger than the hidden size 32" in sweep["out"]
    records = [results(sweep["dir"] / f"{i}_tiny_bert_acl_sup_houlsby_s42") for i in range(4)]  # a folder each
    assert [(r["status"], r["config"]["peft"]["reduction_factor"]) for r in records] == \
        [("completed", 2), ("completed", 4), ("completed", 8), ("failed", 64)]
    array = next(p.name for p in (sweep["dir"] / ".submitit").iterdir() if p.name.isdigit())
    states = slurm("sacct", "--noheader", "-X", "-j", array, "-o", "JobID%20,State").split()
    assert states == [x for i in range(4) for x in (f"{array}_{i}", "COMPLETED")], states  # one array, 4 tasks


def test_the_report_tables_the_sweep_and_lists_the_failed_point(ran):
    report = ran["sweep"]["report"]
    assert report.returncode == 0, report.stderr[-2000:]
    assert "4 run folder(s): 3 completed" in report.stdout and "1 failed" in report.stdout
    for factor in (2, 4, 8):
        assert f"| tiny_bert/houlsby (peft.reduction_factor={factor}) |" in report.stdout
    failed = report.stdout.split("failed:")[-1]
    assert "3_tiny_bert_acl_sup_houlsby_s42" in failed and "larger than the hidden size" in failed


def test_a_search_runs_its_trials_as_slurm_jobs_and_goes_on_past_a_failed_one(ran):
    run = ran["search"]
    assert run["rc"] == 0 and "Traceback" not in run["out"], run["out"][-3000:]
    trials = run["trials"]
    assert [(t.params["peft.reduction_factor"], t.state.name) for t in trials] == \
        [(4, "COMPLETE"), (4, "COMPLETE"), (64, "FAIL"), (4, "COMPLETE")]
    assert "1 of 4 trials failed (the search went on)" in run["out"]
    for t in trials[:2]:  # each value is the job's own best validation macro-F1, sent back from the node
        assert t.value == pytest.approx(results(next(run["dir"].glob(f"{t.number}_*")))["val"]["val/macro_f1"])
    tasks = {p.name for p in (run["dir"] / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name)}
    assert len(tasks) == 4 and len({t.split("_")[0] for t in tasks}) == 2  # 4 jobs: 2 arrays of n_jobs=2


@pytest.mark.parametrize("name", ["requeued", "signalled"])
def test_an_interrupted_job_resumes_from_its_checkpoint_to_the_same_metrics(ran, name):
    run, reference = ran[name], ran["reference"]
    assert run["rc"] == 0 and "Traceback" not in run["out"], run["out"][-3000:]
    resumed = results(run["run_dir"])
    print(f"\n{name}: resumed from {resumed['resumed_from']}, {run['latency']:.0f}s after the interruption" +
          (f" (the signal came {run['frozen_for']:.0f}s into the freeze)" if "frozen_for" in run else ""))
    assert resumed["resumed_from"]["checkpoint"] == "checkpoints/resume.ckpt"
    assert 0 < resumed["resumed_from"]["global_step"] < STEPS
    assert resumed["test"] == reference["test"] and resumed["history"] == reference["history"]
    assert resumed["val"] == reference["val"] and resumed["timing"]["train_samples"] == reference["timing"]["train_samples"]
    states = slurm("sacct", "--noheader", "-X", "--duplicates", "-j", run["job"], "-o", "State").split()
    assert states[0] == "REQUEUED" and states[-1] == "COMPLETED", states
    if name == "signalled":  # submitit took SLURM's signal for the time limit's, and requeued the job itself
        log = next((run["dir"] / ".submitit" / run["job"]).glob("*_0_log.err")).read_text()
        assert "Caught signal SIGUSR2" in log and "this job is timed-out" in log


def test_a_job_cancelled_from_outside_ends_the_command_with_its_reason(ran):
    run = ran["cancelled"]
    assert run["rc"] == 1 and "Traceback" not in run["out"], run["out"][-3000:]
    print(f"\ncancelled: the command ended {run['ended'] - run['asked']:.0f}s after scancel")
    assert run["ended"] - run["asked"] < 150  # submitit alone, without accounting: never
    assert f"SLURM job {run['job']} ended CANCELLED" in run["out"] and "scancel" in run["out"]
    record = results(run["run_dir"])
    assert record["status"] == "failed" and record["error"]["type"] == "SlurmJobEnded"


def test_ddp_is_one_job_of_two_tasks_training_like_one_process(ran):
    run, single = ran["ddp"], ran["ddp_single"]
    assert run["rc"] == 0 and "Traceback" not in run["out"], run["out"][-3000:]
    (found,) = run["dir"].glob("*/results.json")  # rank 0 alone writes it
    ddp = json.loads(found.read_text())
    logs = sorted((run["dir"] / ".submitit" / run["job"]).glob("*_log.out"))
    assert [p.name.rsplit("_", 2)[-2] for p in logs] == ["0", "1"]  # two tasks of one job
    for rank, log in enumerate(logs):  # Lightning took each rank from SLURM's environment
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in log.read_text()
    for key, value in single["test"].items():
        assert ddp["test"][key] == pytest.approx(value, abs=1e-4), key
    for row_ddp, row_single in zip(ddp["history"], single["history"], strict=True):
        assert row_ddp["val/loss"] == pytest.approx(row_single["val/loss"], abs=1e-4)


def test_requests_that_can_never_run_are_refused_before_submission(ran):
    cpus = ran["cpus"]
    expected = {"no_partition": ["partition 'nope' does not exist", "hydra.launcher.partition=<one of debug>"],
                "too_big": [f"{cpus + 1} CPUs per node asked", f"a node has {cpus}", "100000 GB per node asked",
                            "100000 min asked", "the partition allows 60", "1 GPU(s) per node asked",
                            f"hydra.launcher.cpus_per_task={cpus}", "hydra.launcher.timeout_min=60",
                            "hydra.launcher.gpus_per_node=null", "nothing was submitted"]}
    for name, parts in expected.items():
        case = ran[name]
        out = case["proc"].stdout + case["proc"].stderr
        assert case["proc"].returncode == 1 and "Traceback" not in out, out[-3000:]
        for part in parts:
            assert part in out, (name, part, out[-2000:])
        assert not case["folder"] and case["jobs"] == "", (name, case)


def test_a_dry_run_lists_jobs_request_and_memory_without_submitting(ran):
    case = ran["dry_run"]
    out = case["proc"].stdout
    assert case["proc"].returncode == 0, case["proc"].stderr[-3000:]
    assert "dry run, nothing submitted: 2 job(s)" in out and "1 CPU(s) per task, 2 GB per node, no GPU" in out
    assert "--cpus-per-task=1" in out and "--mem=2GB" in out and "--time=5" in out and "--gpus" not in out
    assert re.search(r"^\s+0\s+\d+\.\d+ GiB\s+peft.reduction_factor=4$", out, re.M), out
    assert "its model does not build here: peft.reduction_factor=64 is larger than the hidden size 32" in out
    assert not case["folder"] and case["jobs"] == ""
