"""results.json: one file per run, written atomically, holding what a report needs to group,
compare and reproduce it (metrics, parameters, timing, seed, versions, commit, data hash).

This module is its one owner: `completed`, `failed` and `interrupted` write it, `load` reads it,
`failed_runs` lists a sweep's failed and interrupted jobs. Every record has a `status` (STATUSES);
what `load` says of a folder with no record to read (MISSING, UNREADABLE) is never written.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

PACKAGES = ("ftlab", "torch", "lightning", "transformers", "peft", "datasets", "tokenizers", "torchmetrics",
            "hydra-core", "accelerate", "bitsandbytes")
RESULTS_FILE = "results.json"
COMPLETED, FAILED, INTERRUPTED = "completed", "failed", "interrupted"
STATUSES = (COMPLETED, FAILED, INTERRUPTED)  # what a run records
MISSING, UNREADABLE = "missing", "unreadable"  # what `load` says when there is no record to read


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def git_commit(path: Path | None = None) -> str | None:
    """Commit of the ftlab checkout, with `-dirty` when it has uncommitted changes."""
    where = path or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def _clean(value):
    """JSON has no NaN/inf: write them as null so every reader parses the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json_atomic(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_clean(data), f, indent=2, sort_keys=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Record:
    """One run's results.json as read: its status, and its contents (empty when there are none)."""

    path: Path  # the results.json, there or not
    status: str  # one of STATUSES as the file says (or a newer ftlab's), MISSING or UNREADABLE
    data: dict = field(default_factory=dict)
    problem: str = ""  # MISSING / UNREADABLE: why there is nothing to read

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def reason(self) -> str:
        """One line on why the run has no result: a failed run's error, else the problem."""
        if self.status == FAILED:
            error = self.data.get("error") or {}
            return f"{error.get('type', 'error')}: {error.get('message', '?')}".strip()
        if self.status == INTERRUPTED:
            stop = self.data.get("interrupted") or {}
            return f"interrupted by {stop.get('signal', '?')} at step {stop.get('step', '?')}: {stop.get('resume', '')}"
        return self.problem


def load(where: Path | str) -> Record:
    """The record of a run folder (or of a results.json path). Never raises for a bad file: a run
    killed mid-write, or edited by hand, is something to report, not a crash."""
    path = Path(where)
    if path.name != RESULTS_FILE:
        path = path / RESULTS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Record(path, MISSING, problem=f"no {RESULTS_FILE} (still running, or killed)")
    except (OSError, ValueError) as err:
        return Record(path, UNREADABLE, problem=f"{RESULTS_FILE} unreadable: {err}")
    if not isinstance(data, dict):
        return Record(path, UNREADABLE, problem=f"{RESULTS_FILE} unreadable: not a JSON object")
    status = data.get("status")
    if status is None and isinstance(data.get("test"), dict):
        status = COMPLETED  # written before results.json had a status
    if not isinstance(status, str):
        return Record(path, UNREADABLE, data, problem=f"{RESULTS_FILE} has no status")
    return Record(path, status, data)


def completed(run_dir: Path, results: dict) -> dict:
    """Write a completed run's record (status and run_dir first, then `results`); returns it."""
    record = {"status": COMPLETED, "run_dir": str(run_dir)}
    record.update((k, v) for k, v in results.items() if k not in record)
    write_json_atomic(Path(run_dir) / RESULTS_FILE, record)
    return record


def failed(run_dir: Path, cfg: DictConfig, error: BaseException, user_error: bool, choices: dict,
           overrides: list[str]) -> dict:
    """Write a failed run's record: the error, and the config unresolved (it may be what failed to
    resolve), so that the report lists the run with its reason and the run can be told apart."""
    record = {
        "status": FAILED,
        "run_dir": str(run_dir),
        "seed": cfg.get("seed"),
        "choices": dict(choices),
        "overrides": list(overrides),
        "error": {"type": type(error).__name__, "message": str(error), "user_error": user_error},
        "config": OmegaConf.to_container(cfg, resolve=False),
    }
    write_json_atomic(Path(run_dir) / RESULTS_FILE, record)
    return record


def interrupted(run_dir: Path, cfg: DictConfig, signal_name: str, step: int, choices: dict,
                overrides: list[str]) -> dict:
    """Write a run stopped by a signal at a clean point: which signal, at which optimizer step, and
    the command that continues it exactly from its resume checkpoint."""
    record = {
        "status": INTERRUPTED,
        "run_dir": str(run_dir),
        "seed": cfg.get("seed"),
        "choices": dict(choices),
        "overrides": list(overrides),
        "interrupted": {"signal": signal_name, "step": step, "resume": f"ftlab resume={run_dir}"},
        "config": OmegaConf.to_container(cfg, resolve=False),
    }
    write_json_atomic(Path(run_dir) / RESULTS_FILE, record)
    return record


def failed_runs(sweep_dir: Path | str) -> list[Record]:
    """The failed and interrupted jobs of a sweep (a folder per job under `sweep_dir`), sorted by
    folder: a launcher that ran them elsewhere (submitit: other processes, SLURM nodes) leaves only
    their records. Their run_dir is absolute, as Hydra names a job's output_dir."""
    root = Path(os.path.abspath(sweep_dir))
    records = (load(path) for path in sorted(root.glob(f"*/{RESULTS_FILE}")))
    return [r for r in records if r.status in (FAILED, INTERRUPTED)]
