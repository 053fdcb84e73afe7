"""Find runs under sweep directories, load their results.json, and group them (grouping.py).

A group is a set of completed runs that differ only in the seed: same resolved config (minus the seed
and the keys that name the run's own folder), same package versions, same data hash. Within one
(model, dataset, peft) cell, runs that were meant to differ (their Hydra overrides differ, e.g. an
`optimizer.lr` sweep) become separate rows; runs that were meant to be the same but are not (a
different torch, an edited config, other data) are left out, largest consistent group kept, with
the keys that differ named. Failed and unfinished runs are kept in the listing with their reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ftlab.errors import UserError
from ftlab.report.grouping import Group, group_runs
from ftlab.results import RESULTS_FILE

# overrides that choose the cell (row model/peft, column dataset) or the seed, not a variant of it
CELL_OVERRIDES = {"seed", "model", "peft", "dataset", "dataset.subset"}


@dataclass
class Run:
    path: Path
    status: str  # completed | failed | unfinished | unreadable
    results: dict = field(default_factory=dict)
    reason: str = ""  # why a run is failed / unfinished / unreadable
    overrides: dict = field(default_factory=dict)  # Hydra task overrides, cell choices and seed removed
    mtime: float = 0.0

    @property
    def choices(self) -> dict:
        return self.results.get("choices") or {}

    @property
    def model(self) -> str:
        return str(self.choices.get("model", "?"))

    @property
    def peft(self) -> str:
        return str(self.choices.get("peft", "?"))

    @property
    def dataset(self) -> str:
        subset = ((self.results.get("config") or {}).get("dataset") or {}).get("subset")
        name = str(self.choices.get("dataset", "?"))
        return f"{name}/{subset}" if subset else name

    @property
    def seed(self):
        return self.results.get("seed", (self.results.get("config") or {}).get("seed"))


@dataclass
class Collection:
    roots: list[Path]
    runs: list[Run]
    groups: list[Group]
    excluded: list[tuple[Run, str]]
    baseline: str | None = None

    def with_status(self, *statuses: str) -> list[Run]:
        return [r for r in self.runs if r.status in statuses]


def _overrides(run_dir: Path, results: dict | None = None) -> dict:
    """The run's Hydra task overrides: from results.json, else from the run's .hydra folder."""
    items = (results or {}).get("overrides")
    if items is None:
        try:
            items = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
        except (OSError, yaml.YAMLError):
            return {}
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if key not in CELL_OVERRIDES and not key.startswith("hydra."):
            out[key] = value
    return out


def load_run(run_dir: Path) -> Run:
    file = run_dir / RESULTS_FILE
    if not file.is_file():
        return Run(run_dir, "unfinished", reason="no results.json (still running, or killed)",
                   overrides=_overrides(run_dir), mtime=run_dir.stat().st_mtime)
    try:
        results = json.loads(file.read_text())
        assert isinstance(results, dict)
    except (OSError, ValueError, AssertionError) as err:
        return Run(run_dir, "unreadable", reason=f"results.json unreadable: {err}", mtime=file.stat().st_mtime)
    run = Run(run_dir, "completed", results, overrides=_overrides(run_dir, results), mtime=file.stat().st_mtime)
    status = results.get("status", "completed" if "test" in results else "unknown")
    if status == "failed":
        error = results.get("error") or {}
        run.status, run.reason = "failed", f"{error.get('type', 'error')}: {error.get('message', '?')}".strip()
    elif status != "completed" or not isinstance(results.get("test"), dict):
        run.status, run.reason = "unreadable", f"status {status!r}, no test metrics"
    return run


def find_runs(dirs: list[Path], skip: Path | None = None) -> list[Run]:
    """Every folder holding a results.json or a .hydra/config.yaml, under each of `dirs`."""
    found: set[Path] = set()
    for root in dirs:
        if not root.is_dir():
            raise UserError(f"not a directory: {root}", "pass run or sweep directories, e.g. outputs/multirun/<date>/<time>")
        for file in (*root.rglob(RESULTS_FILE), *root.rglob(".hydra/config.yaml")):
            run_dir = file.parent.parent if file.name == "config.yaml" else file.parent
            if skip is None or not run_dir.resolve().is_relative_to(skip.resolve()):
                found.add(run_dir.resolve())
    return [load_run(d) for d in sorted(found)]


def collect(dirs: list[Path], skip: Path | None = None, baseline: str | None = None) -> Collection:
    """Find, load and group the runs under `dirs`; `baseline` defaults to `full` when some run used it."""
    runs = find_runs(dirs, skip)
    if not runs:
        where = ", ".join(str(d) for d in dirs)
        raise UserError(f"no runs found under {where}",
                        "pass a run or sweep directory: one holding <job>/results.json or <job>/.hydra/config.yaml")
    methods = sorted({r.peft for r in runs if r.status == "completed"})
    if baseline is None:
        baseline = "full" if "full" in methods else None
    elif baseline not in methods:
        raise UserError(f"--baseline {baseline}: no completed run used peft={baseline}",
                        f"use one of: {', '.join(methods) or '(no completed runs)'}")
    groups, excluded = group_runs(runs, baseline)
    return Collection(list(dirs), runs, groups, excluded, baseline)
