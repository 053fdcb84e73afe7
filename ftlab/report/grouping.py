"""Grouping: runs that differ only in the seed average together; accidental differences are named.

The key of a run is its resolved config minus the seed and the keys that name its own folder (or a
cache), plus its package versions and data hash. Within one (model, dataset, peft) cell, runs whose
Hydra overrides differ were meant to differ (an `optimizer.lr` sweep): they become separate rows,
labelled by those overrides. Runs meant to be the same that are not (another torch, an edited
config, other data) are left out, the largest consistent group kept (ties: the most recent), with
the differing keys named; a seed repeated within a group keeps its newest run.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from ftlab.report.runs import Run

# keys that name where a run writes (its own folder) or caches; never part of what was trained
LOCATION_KEYS = re.compile(r"^(paths\.output_dir|trainer\.default_root_dir|callbacks\..+\.dirpath"
                           r"|logger\..+\.save_dir|(.+\.)?cache_dir)$")


@dataclass
class Group:
    model: str
    peft: str
    dataset: str
    runs: list[Run]  # sorted by seed, one run per seed
    key: dict  # what every run agrees on (flattened config, versions.*, data_hash)
    overrides: dict
    label: str = ""  # row label: model/peft (+ distinguishing overrides)

    @property
    def seeds(self) -> list:
        return [r.seed for r in self.runs]


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def group_key(run: Run) -> dict:
    """Resolved config minus the seed and the run-location keys, plus versions and the data hash."""
    r = run.results
    own_dirs = {str(d) for d in (r.get("run_dir"), run.path) if d}
    key = {}
    for k, v in flatten(r.get("config") or {}).items():
        if k == "seed" or LOCATION_KEYS.match(k) or (isinstance(v, str) and any(d in v for d in own_dirs)):
            continue
        key[k] = v
    key.update({f"versions.{k}": v for k, v in (r.get("versions") or {}).items()})
    key["data_hash"] = (r.get("data") or {}).get("data_hash")
    return key


def _canon(key: dict) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def _show(name: str, value) -> str:
    if value is None:
        return "(absent)"
    if name == "data_hash" and isinstance(value, str):
        return value[:12]
    return json.dumps(value, default=str) if not isinstance(value, str) else value


def describe_difference(key: dict, kept: dict, limit: int = 5) -> str:
    """'optimizer.lr 0.0001 vs 0.0005; versions.torch 2.0 vs 2.13' (this run's value first)."""
    diff = [k for k in sorted(set(key) | set(kept)) if _canon({0: key.get(k)}) != _canon({0: kept.get(k)})]
    parts = [f"{k} {_show(k, key.get(k))} vs {_show(k, kept.get(k))}" for k in diff[:limit]]
    if len(diff) > limit:
        parts.append(f"(+{len(diff) - limit} more)")
    return "; ".join(parts)


def _names(runs: list[Run]) -> str:
    return ", ".join(r.path.name for r in runs)


def _group_cell(runs: list[Run], excluded: list[tuple[Run, str]]) -> list[Group]:
    """Split one (model, dataset, peft) cell into groups; leave out runs that disagree by accident."""
    by_key: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_key[_canon(group_key(run))].append(run)
    by_intent: dict[str, list[list[Run]]] = defaultdict(list)  # the same overrides = meant to be the same
    for members in by_key.values():
        counts = Counter(_canon(r.overrides) for r in members)
        by_intent[max(counts, key=lambda o: (counts[o], max(r.mtime for r in members if _canon(r.overrides) == o)))
                  ].append(members)
    groups = []
    for intent, candidates in by_intent.items():
        candidates.sort(key=lambda m: (len({str(r.seed) for r in m}), max(r.mtime for r in m)), reverse=True)
        kept, kept_key = candidates[0], group_key(candidates[0][0])
        for other in candidates[1:]:
            for run in other:
                excluded.append((run, f"differs from the kept group ({_names(kept)}) in {describe_difference(group_key(run), kept_key)}"))
        by_seed: dict[str, list[Run]] = defaultdict(list)
        for run in kept:
            by_seed[str(run.seed)].append(run)
        one_per_seed = []
        for seed_runs in by_seed.values():
            seed_runs.sort(key=lambda r: r.mtime, reverse=True)
            one_per_seed.append(seed_runs[0])
            for dup in seed_runs[1:]:
                excluded.append((dup, f"seed {dup.seed} repeated in its group; the newer run {seed_runs[0].path.name} is kept"))
        one_per_seed.sort(key=lambda r: (0, r.seed, "") if isinstance(r.seed, (int, float)) else (1, 0, str(r.seed)))
        first = one_per_seed[0]
        groups.append(Group(first.model, first.peft, first.dataset, one_per_seed, kept_key, json.loads(intent)))
    return groups


def assign_labels(groups: list[Group]) -> None:
    """Row label model/peft, plus the overrides that tell apart groups of one cell that share it."""
    by_base: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        by_base[f"{g.model}/{g.peft}"].append(g)
    for base, members in by_base.items():
        cells: dict[str, list[Group]] = defaultdict(list)
        for g in members:
            cells[g.dataset].append(g)
        varying: set[str] = set()
        for cell in cells.values():
            if len(cell) > 1:
                keys = set().union(*(g.overrides for g in cell))
                varying |= {k for k in keys if len({g.overrides.get(k) for g in cell}) > 1}
        for g in members:
            parts = [f"{k}={g.overrides[k]}" for k in sorted(varying) if k in g.overrides]
            g.label = base + (f" ({', '.join(parts)})" if parts else "")


def group_runs(runs: list[Run], baseline: str | None = None) -> tuple[list[Group], list[tuple[Run, str]]]:
    cells: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        if run.status == "completed":
            cells[(run.model, run.dataset, run.peft)].append(run)
    excluded: list[tuple[Run, str]] = []
    groups = [g for cell in cells.values() for g in _group_cell(cell, excluded)]
    assign_labels(groups)
    groups.sort(key=lambda g: (g.model, g.peft != baseline, g.peft, g.label, g.dataset))
    return groups, excluded
