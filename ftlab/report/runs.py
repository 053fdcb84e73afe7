"""One run as the report sees it: its results.json (read by ftlab/results.py), its status in the
listing, and the Hydra overrides that say which variant of its cell it was meant to be.

The bottom of the report's imports: grouping.py groups these, collect.py finds and groups them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


from ftlab import results as records
from ftlab.config.saved import saved_overrides

# overrides that choose the cell (row model/peft, column dataset) or the seed, not a variant of it
CELL_OVERRIDES = {"seed", "model", "peft", "dataset", "dataset.subset"}


@dataclass
class Run:
    path: Path
    status: str  # completed | failed | interrupted | unfinished | unreadable
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


def _overrides(run_dir: Path, results: dict | None = None) -> dict:
    """The run's Hydra task overrides: from results.json, else from the run's .hydra folder."""
    items = (results or {}).get("overrides")
    if items is None:
        items = saved_overrides(run_dir)
        if items is None:
            return {}
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if key not in CELL_OVERRIDES and not key.startswith("hydra."):
            out[key] = value
    return out


def load_run(run_dir: Path) -> Run:
    """A run folder as the listing shows it; only a completed run with test metrics is grouped."""
    record = records.load(run_dir)
    if record.status == records.MISSING:
        return Run(run_dir, "unfinished", reason=record.problem, overrides=_overrides(run_dir),
                   mtime=run_dir.stat().st_mtime)
    mtime = record.path.stat().st_mtime
    if not record.data:  # not JSON, not an object
        return Run(run_dir, "unreadable", reason=record.problem, mtime=mtime)
    run = Run(run_dir, "completed", record.data, overrides=_overrides(run_dir, record.data), mtime=mtime)
    if record.status in (records.FAILED, records.INTERRUPTED):
        run.status, run.reason = record.status, record.reason
    elif record.status != records.COMPLETED or not isinstance(record.data.get("test"), dict):
        status = record.data.get("status", "unknown")
        run.status, run.reason = "unreadable", f"status {status!r}, no test metrics"
    return run
