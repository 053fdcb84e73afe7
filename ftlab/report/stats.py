"""Paired tests over seeds: each method against a baseline method on the same model and dataset.

Runs are paired by seed (seed s of the method with seed s of the baseline: same data order, same
head initialisation), so the test sees the difference per seed, not two independent samples. Both
the paired t-test and the Wilcoxon signed-rank test are scipy's, called with its defaults; the
Wilcoxon only from 6 paired seeds (below, its smallest two-sided p, 2/2^n, is above 0.05). Accuracy
and the F1s of single-label runs also get the paired bootstrap over test examples (significance.py);
`adjust` applies Holm's correction over the cells of one table.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from scipy import stats

from ftlab.report.grouping import Group
from ftlab.report.significance import RESAMPLES, Bootstrap, group_bootstrap, holm, wilcoxon_can_reach


@dataclass
class PairedTest:
    baseline: str  # row label of the baseline group
    seeds: list = field(default_factory=list)
    diff_mean: float | None = None  # method minus baseline, raw scale
    diff_std: float | None = None
    t_stat: float | None = None
    p_ttest: float | None = None
    w_stat: float | None = None
    p_wilcoxon: float | None = None
    note: str = ""
    p_ttest_holm: float | None = None  # Holm-adjusted over the cells of one table
    p_wilcoxon_holm: float | None = None
    bootstrap: Bootstrap | None = None  # over test examples, pooled over the paired seeds

    @property
    def n(self) -> int:
        return len(self.seeds)


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def paired_test(method: Sequence[float], baseline: Sequence[float], label: str = "") -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of `method` against `baseline` (same order)."""
    if len(method) != len(baseline):
        raise ValueError("paired samples must have the same length")
    diffs = [a - b for a, b in zip(method, baseline)]
    out = PairedTest(label, list(range(len(diffs))))
    if diffs:
        out.diff_mean = sum(diffs) / len(diffs)
    if len(diffs) > 1:
        out.diff_std = math.sqrt(sum((d - out.diff_mean) ** 2 for d in diffs) / (len(diffs) - 1))
    if len(diffs) < 2:
        out.note = "fewer than 2 paired seeds"
        return out
    if all(d == 0 for d in diffs):
        out.note = "identical on every seed"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = stats.ttest_rel(method, baseline)
        out.t_stat, out.p_ttest = _finite(t.statistic), _finite(t.pvalue)
        if not wilcoxon_can_reach(len(diffs)):  # it could not reach 0.05: not computed
            return out
        try:
            w = stats.wilcoxon(method, baseline)
            out.w_stat, out.p_wilcoxon = _finite(w.statistic), _finite(w.pvalue)
        except ValueError as err:  # e.g. too few non-zero differences
            out.note = str(err)
    return out


def seed_values(group: Group, metric: str) -> dict:
    """seed -> raw value of `metric` (e.g. 'test/accuracy'), runs without it left out."""
    values = {}
    for run in group.runs:
        value = (run.results.get(metric.split("/", 1)[0]) or {}).get(metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            values[run.seed] = float(value)
    return values


def baseline_for(group: Group, groups: list[Group], baseline: str) -> Group | None:
    """The baseline group of the same model and dataset, the one sharing most non-method overrides."""
    if group.peft == baseline:
        return None
    candidates = [g for g in groups if g.peft == baseline and g.model == group.model and g.dataset == group.dataset]
    if not candidates:
        return None

    def shared(g: Group) -> int:
        own = {(k, v) for k, v in group.overrides.items() if not k.startswith(("peft.", "optimizer.lr"))}
        return len(own & set(g.overrides.items()))

    return max(candidates, key=lambda g: (shared(g), len(g.runs)))


def compare(group: Group, base: Group, metric: str, n_resamples: int = RESAMPLES) -> PairedTest:
    """Paired tests over seeds, and the bootstrap over test examples where `metric` has one."""
    mine, theirs = seed_values(group, metric), seed_values(base, metric)
    seeds = [s for s in mine if s in theirs]
    test = paired_test([mine[s] for s in seeds], [theirs[s] for s in seeds], base.label)
    test.seeds = seeds
    test.bootstrap = group_bootstrap(group, base, metric, n_resamples)
    return test


def adjust(tests: list[PairedTest]) -> None:
    """Holm's correction over `tests` (one table), separately for each kind of test."""
    for raw, adjusted in (("p_ttest", "p_ttest_holm"), ("p_wilcoxon", "p_wilcoxon_holm")):
        for t, p in zip(tests, holm([getattr(t, raw) for t in tests])):
            setattr(t, adjusted, p)
    boots = [t.bootstrap for t in tests if t.bootstrap is not None]
    for b, p in zip(boots, holm([b.p for b in boots])):
        b.p_holm = p
