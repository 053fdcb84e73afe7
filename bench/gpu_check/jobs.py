"""Running the plan's jobs. On the GPU each job is a process of its own, the real entry points
(`python -m ftlab ...`, `python -m ftlab estimate --json ...`, `python -m bench.gpu_check.hf SPEC`),
one at a time, in the plan's order. The dry run runs the same jobs in one shared process
(`python -m bench.gpu_check.jobs JOBS OUT`: ftlab's through `ftlab.train`, the command's own code
minus the process start, as bench/run.py's --share-process does), which keeps the CPU rehearsal
under a minute. Every job ends as {"status": ok | failed | skipped, "seconds", "start_wall",
"error_tail", "log"}; a budget stops new jobs from starting late, a deadline bounds each one."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench.common import write_json

REPO = Path(__file__).resolve().parents[2]
TAIL = 2500  # characters of a failure's log kept in the report


def say(message: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _tail(text: str) -> str:
    return text[-TAIL:].strip()


def command(job: dict) -> list[str]:
    if job["kind"] in ("ftlab", "refusal"):
        return [sys.executable, "-m", "ftlab", *job["args"]]
    if job["kind"] == "estimate":
        return [sys.executable, "-m", "ftlab", "estimate", "--json", *job["args"]]
    if job["kind"] == "prepare":
        return [sys.executable, "-m", "bench.gpu_check.prepare", job["spec"]]
    return [sys.executable, "-m", "bench.gpu_check.hf", job["spec"]]


def run_process(cmd: list[str], env: dict, log: Path, timeout: float, stdout: Path | None = None) -> dict:
    """One child in a session of its own (a timeout ends it and whatever it started), its output to `log`."""
    start_wall, started = time.time(), time.perf_counter()
    with open(log, "w") as err, open(stdout or os.devnull, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out if stdout else err, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    seconds = time.perf_counter() - started
    text = log.read_text(errors="replace")
    if rc == 0:
        return {"status": "ok", "seconds": seconds, "start_wall": start_wall, "log": str(log), "returncode": rc}
    why = f"killed after {timeout:.0f} s (time limit)" if rc is None else f"exit {rc}"
    return {"status": "failed", "seconds": seconds, "start_wall": start_wall, "log": str(log), "returncode": rc,
            "error_tail": f"{why}\n{_tail(text)}"}


def refusal(outcome: dict) -> dict:
    """A CUDA-only run on CPU (the dry run, --processes): passes when ftlab refused it with its error line."""
    lines = Path(outcome["log"]).read_text(errors="replace").splitlines()
    refused = next((x for x in lines if x.startswith("error:") and "CUDA" in x), None)
    if outcome["returncode"] and refused:
        return {**outcome, "status": "ok", "refused": refused.removeprefix("error:").strip(), "error_tail": None}
    return {**outcome, "status": "failed", "error_tail": "ftlab did not refuse a CUDA-only run on a machine without "
            f"CUDA\n{outcome.get('error_tail') or ''}"}


def skipped(reason: str) -> dict:
    return {"status": "skipped", "seconds": 0.0, "start_wall": time.time(), "reason": reason}


def why_not(job: dict, results: dict, elapsed: float, budget_s: float) -> str | None:
    """Why a job is not started: the plan skips it, the models were not prepared, or it is too late."""
    if job["kind"] == "skip":
        return job["reason"]
    if job["kind"] != "prepare" and (results.get("prepare") or {}).get("status") != "ok":
        return "the prepare job (random models, matmul peak) failed"
    if elapsed > budget_s:
        return f"time budget: {elapsed:.0f} s gone, no job starts after {budget_s:.0f} s"
    return None


def execute(jobs: list[dict], env: dict, work: Path, started: float, budget_s: float, deadline_s: float,
            timeout_s: float, shared: bool, on_done=None) -> dict:
    """Run every job; returns {name: outcome}. `on_done(results)` after each (the report so far)."""
    if shared:
        return _execute_shared(jobs, env, work, started, budget_s, deadline_s)
    results: dict = {}
    for job in jobs:
        now = time.time() - started
        reason = why_not(job, results, now, budget_s)
        if reason:
            results[job["name"]] = skipped(reason)
        else:
            say(f"{job['name']} ...")
            out = Path(job["out"]) if job["kind"] == "estimate" else None
            outcome = run_process(command(job), {**env, **job.get("env", {})}, work / f"{job['name']}.log",
                                  min(timeout_s, deadline_s - now), out)
            results[job["name"]] = refusal(outcome) if job["kind"] == "refusal" else outcome
        say(f"{job['name']}: {results[job['name']]['status']} ({results[job['name']]['seconds']:.1f} s)")
        if on_done:
            on_done(results)
    return results


def _execute_shared(jobs, env, work, started, budget_s, deadline_s) -> dict:
    path, out = work / "jobs.json", work / "jobs.out.json"
    write_json(path, {"jobs": jobs, "started": started, "budget_s": budget_s})
    say(f"dry run: {len(jobs)} jobs in one process (python -m bench.gpu_check.jobs)")
    proc = run_process([sys.executable, "-m", "bench.gpu_check.jobs", str(path), str(out)], env,
                       work / "shared.log", deadline_s - (time.time() - started))
    results = json.loads(out.read_text()) if out.is_file() else {}
    for outcome in results.values():
        outcome["log"] = str(work / "shared.log")  # every job's output, one after the other
    for job in jobs:
        if job["name"] not in results:  # the shared process died before it: its end is the cause
            results[job["name"]] = {**proc, "status": "failed", "seconds": 0.0,
                                    "error_tail": f"the shared process ended before this job:\n{proc.get('error_tail', '')}"}
        say(f"{job['name']}: {results[job['name']]['status']} ({results[job['name']]['seconds']:.1f} s)")
    return results


# ---- the dry run's shared process -----------------------------------------------------------------
def _in_process(job: dict) -> None:
    if job["kind"] == "ftlab":
        import ftlab

        ftlab.train(*job["args"])
    elif job["kind"] == "hf":
        from bench.gpu_check.hf import run_spec

        run_spec(job["spec"])
    elif job["kind"] == "prepare":
        from bench.gpu_check.prepare import run_spec

        run_spec(job["spec"])
    elif job["kind"] == "estimate":
        from ftlab.memory.command import estimate_main

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            rc = estimate_main(["--json", *job["args"]])
        if rc:
            raise RuntimeError(f"ftlab estimate exited {rc}")
        Path(job["out"]).write_text(buffer.getvalue())
    elif job["kind"] == "refusal":  # a CUDA-only path on CPU: ftlab must refuse it before anything starts
        from ftlab.config.preflight import preflight
        from ftlab.errors import UserError

        try:
            preflight(job["args"])
        except UserError as err:
            job["refused"] = str(err).splitlines()[0]
            return
        raise RuntimeError("ftlab did not refuse a CUDA-only run on a machine without CUDA")
    else:
        raise ValueError(f"unknown job kind {job['kind']!r}")


@contextlib.contextmanager
def _compile_with(kwargs: dict | None):
    """torch.compile(..., **kwargs) for the length of one job (the dry run's compile check)."""
    if not kwargs:
        yield
        return
    import functools

    import torch

    original = torch.compile
    torch.compile = functools.partial(original, **kwargs)
    try:
        yield
    finally:
        torch.compile = original


def worker(jobs_path: str, out_path: str) -> int:
    plan = json.loads(Path(jobs_path).read_text())
    results: dict = {}
    for job in plan["jobs"]:
        start_wall, started = time.time(), time.perf_counter()
        reason = why_not(job, results, start_wall - plan["started"], plan["budget_s"])
        if reason:
            results[job["name"]] = skipped(reason)
        else:
            print(f"==== {job['name']}", flush=True)
            try:
                with _compile_with(job.get("compile_kwargs")):
                    _in_process(job)
                results[job["name"]] = {"status": "ok", "refused": job.get("refused")}
            except Exception:  # one job's failure is its result; the next job still runs
                text = traceback.format_exc()
                print(text, file=sys.stderr, flush=True)
                results[job["name"]] = {"status": "failed", "error_tail": _tail(text)}
            results[job["name"]].update(seconds=time.perf_counter() - started, start_wall=start_wall)
        write_json(out_path, results)
    return 0


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1], sys.argv[2]))
