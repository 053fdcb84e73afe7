"""Find runs under sweep directories, load them (runs.py), and group them (grouping.py).

A group is a set of completed runs that differ only in the seed: same resolved config (minus the seed
and the keys that name the run's own folder), same package versions, same data hash. Within one
(model, dataset, peft) cell, runs that were meant to differ (their Hydra overrides differ, e.g. an
`optimizer.lr` sweep) become separate rows; runs that were meant to be the same but are not (a
different torch, an edited config, other data) are left out, largest consistent group kept, with
the keys that differ named. Failed and unfinished runs are kept in the listing with their reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftlab.errors import UserError
from ftlab.report.grouping import Group, group_runs
from ftlab.report.runs import Run, load_run
from ftlab.results import RESULTS_FILE

__all__ = ["Collection", "Group", "Run", "collect", "find_runs", "group_runs", "load_run"]


@dataclass
class Collection:
    roots: list[Path]
    runs: list[Run]
    groups: list[Group]
    excluded: list[tuple[Run, str]]
    baseline: str | None = None

    def with_status(self, *statuses: str) -> list[Run]:
        return [r for r in self.runs if r.status in statuses]


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
