"""Statistics that can answer: a paired bootstrap over test examples, bootstrap CIs and Holm's correction.

- The paired bootstrap (Berg-Kirkpatrick et al., 2012; Dror et al., 2018) of a method against its
  baseline over the test examples, pooled over the seeds both have: δ = mean over paired seeds s of
  metric(method, s) - metric(baseline, s), recomputed on B resamples of the test examples drawn with
  replacement, the same resample for every seed and both methods. Two-sided p of the shifted null,
  (1 + #{b: |δ*_b - δ| >= |δ|}) / (B + 1), so its smallest value is 1 / (B + 1); 95% percentile CI of δ.
  Single-label classification only (accuracy = micro-F1, and macro-F1 as torchmetrics' average="macro":
  the mean of the per-class F1 over the classes with TP + FP + FN > 0), from predictions/test.jsonl.
- A 95% CI of each mean over seeds: scipy.stats.bootstrap, BCa (percentile where BCa is degenerate).
- Holm's (1979) step-down correction of the p-values of one table.

Every resampling draws from numpy's default_rng(SEED), so a report is the same each time it is written.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse, stats

from ftlab import predictions
from ftlab.errors import UserError
from ftlab.report.grouping import Group

SEED = 0
RESAMPLES = 10_000
ALPHA = 0.05
# table metric -> the statistic the bootstrap recomputes (micro-F1 is accuracy for single-label)
BOOTSTRAP_METRICS = {"test/accuracy": "accuracy", "test/macro_f1": "macro_f1", "test/micro_f1": "accuracy"}
CELLS_PER_CHUNK = 4_000_000  # resamples x examples per chunk: ~100 MB at most in flight
DENSE_BYTES = 64 * 2**20  # indicator columns kept dense (BLAS) up to this size, sparse above


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni step-down adjusted p-values, in the input's order (None stays None)."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))  # monotone in the raw p's order
        out[i] = running
    return out


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided p of the exact Wilcoxon signed-rank test with n non-zero differences."""
    return 2.0 / 2**n


def wilcoxon_can_reach(n: int, alpha: float = ALPHA) -> bool:
    return n >= 1 and wilcoxon_min_p(n) <= alpha


def mean_ci(values: Sequence[float], confidence: float = 0.95, seed: int = SEED) -> tuple[float, float] | None:
    """A `confidence` CI of the mean of `values`: scipy's BCa bootstrap, percentile where BCa gives nan
    or warns that the data are degenerate; None for fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or not np.all(np.isfinite(x)):
        return None
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = stats.bootstrap((x,), np.mean, method=method, confidence_level=confidence,
                                  rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        degenerate = any(issubclass(w.category, stats.DegenerateDataWarning) for w in caught)
        if math.isfinite(low) and math.isfinite(high) and not degenerate:
            return low, high
    return (float(x[0]), float(x[0])) if np.all(x == x[0]) else None


# ---- the paired bootstrap over test examples ----------------------------------------------------
@dataclass
class Bootstrap:
    metric: str = ""  # accuracy | macro_f1
    delta: float | None = None  # observed δ, raw scale (method minus baseline)
    p: float | None = None
    ci_low: float | None = None  # 95% percentile CI of δ
    ci_high: float | None = None
    n_examples: int = 0
    n_resamples: int = 0
    seeds: list = field(default_factory=list)
    p_holm: float | None = None
    note: str = ""


def _scores(sums: np.ndarray, k: int, runs: int, n: int) -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 of every run (columns) on every resample (rows). `sums`: the resamples'
    counts times the indicator columns [true one-hot | each run's predicted one-hot | each run's TP]."""
    sums = sums.astype(np.float64)
    true_c = sums[:, None, :k]  # (b, 1, C): support of each class in the resample
    pred_c = sums[:, k:k + runs * k].reshape(len(sums), runs, k)
    tp = sums[:, k + runs * k:].reshape(len(sums), runs, k)
    den = pred_c + true_c  # 2TP + FP + FN
    f1 = np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0)
    used = (den > 0).sum(axis=2)  # classes with TP + FP + FN > 0, as torchmetrics weighs them
    macro = np.divide(f1.sum(axis=2), used, out=np.zeros(used.shape), where=used > 0)
    return {"accuracy": tp.sum(axis=2) / n, "macro_f1": macro}


def _indicators(labels: np.ndarray, runs: np.ndarray, k: int, dtype):
    """(n, C + 2 R C) 0/1 columns [true one-hot | each run's predicted one-hot | each run's TP one-hot]:
    dense when small (BLAS), else sparse (at most 1 + 2R ones a row)."""
    n, r = len(labels), len(runs)
    rows = [np.arange(n)] + [np.arange(n)] * r + [np.flatnonzero(p == labels) for p in runs]
    cols = [labels] + [k + i * k + p for i, p in enumerate(runs)] + \
           [k + (r + i) * k + p[p == labels] for i, p in enumerate(runs)]
    shape = (n, k + 2 * r * k)
    matrix = sparse.csr_array((np.ones(sum(map(len, rows)), dtype=dtype), (np.concatenate(rows), np.concatenate(cols))),
                              shape=shape)
    return matrix.toarray() if shape[0] * shape[1] * np.dtype(dtype).itemsize <= DENSE_BYTES else matrix


def paired_bootstrap(labels, method_preds, base_preds, num_classes: int | None = None,
                     n_resamples: int = RESAMPLES, seed: int = SEED, confidence: float = 0.95) -> dict[str, Bootstrap]:
    """δ, p and CI for accuracy and macro-F1. `labels`: (n,) class ids; `method_preds`, `base_preds`:
    (seeds, n) predicted ids, row s of one paired with row s of the other."""
    labels = np.asarray(labels, dtype=np.int64)
    mine, theirs = np.atleast_2d(np.asarray(method_preds, dtype=np.int64)), np.atleast_2d(np.asarray(base_preds, dtype=np.int64))
    if mine.shape != theirs.shape or mine.shape[1] != len(labels) or not len(labels) or not len(mine):
        raise ValueError("need (seeds, n) predictions of both methods for the same n > 0 labelled examples")
    n, s = len(labels), len(mine)
    k = max(num_classes or 0, int(labels.max()) + 1, int(mine.max()) + 1, int(theirs.max()) + 1)
    runs = np.concatenate([mine, theirs])  # (2s, n)
    dtype = np.float32 if n < 2**24 else np.float64  # the integer sums stay exact
    columns = _indicators(labels, runs, k, dtype)

    def deltas(counts: np.ndarray) -> dict[str, np.ndarray]:
        scores = _scores(counts @ columns, k, 2 * s, n)
        return {m: (v[:, :s] - v[:, s:]).mean(axis=1) for m, v in scores.items()}

    observed = {m: float(v[0]) for m, v in deltas(np.ones((1, n), dtype=dtype)).items()}
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, CELLS_PER_CHUNK // max(n, columns.shape[1])))
    drawn: dict[str, list[np.ndarray]] = {m: [] for m in observed}
    for start in range(0, n_resamples, chunk):  # a resample's counts: how often each example is drawn
        b = min(chunk, n_resamples - start)
        kind = np.int32 if b * n < 2**31 else np.int64
        idx = rng.integers(0, n, size=(b, n), dtype=kind) + (np.arange(b, dtype=kind) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(dtype)
        del idx
        for m, v in deltas(counts).items():
            drawn[m].append(v)
    out = {}
    tail = (1 - confidence) / 2 * 100
    for m, delta in observed.items():
        star = np.concatenate(drawn[m])
        extreme = int(np.count_nonzero(np.abs(star - delta) >= abs(delta) - 1e-12))
        low, high = np.percentile(star, [tail, 100 - tail])
        out[m] = Bootstrap(m, delta, (1 + extreme) / (n_resamples + 1), float(low), float(high), n, n_resamples)
    return out


def _examples(run) -> tuple[dict | None, str]:
    """One run's test labels and predictions (arrays by example index), or why there are none."""
    if (run.results.get("task") or {}).get("task_type", "single_label") != "single_label":
        return None, "not single-label classification"
    try:
        rows = predictions.load(run.path, "test")
    except UserError:
        return None, f"no predictions/test.jsonl in {run.path.name}"
    except (OSError, ValueError) as err:
        return None, f"predictions/test.jsonl of {run.path.name} unreadable ({err})"
    if not rows or not all(isinstance(r.get("label"), int) and isinstance(r.get("pred"), int) for r in rows):
        return None, f"predictions/test.jsonl of {run.path.name} holds no single-label rows"
    return {k: np.array([r[k] for r in rows], dtype=np.int64) for k in ("index", "label", "pred")}, ""


def _stamp(run) -> tuple:
    try:
        info = predictions.path(run.path, "test").stat()
    except OSError:
        return ()
    return info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=128)
def _cached(method_runs: tuple, base_runs: tuple, num_classes: int, n_resamples: int, seed: int):
    mine, theirs = [], []
    for runs, into in ((method_runs, mine), (base_runs, theirs)):
        for run, _ in runs:
            data, why = _examples(run)
            if data is None:
                return why
            into.append(data)
    first = mine[0]
    if any(len(d["index"]) != len(first["index"]) or not np.array_equal(d["index"], first["index"])
           for d in mine + theirs):
        return "the runs' test examples differ (other indices): no paired bootstrap"
    if any(not np.array_equal(d["label"], first["label"]) for d in mine + theirs):
        return "the runs' gold labels differ on the same examples: no paired bootstrap"
    return paired_bootstrap(first["label"], [d["pred"] for d in mine], [d["pred"] for d in theirs],
                            num_classes, n_resamples, seed)


class _Key:
    """A run as a cache key: its folder and its predictions file's mtime and size (not its results dict)."""

    def __init__(self, run):
        self.run, self.key = run, (str(run.path), _stamp(run))

    def __iter__(self):
        return iter((self.run, self.key))

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _Key) and self.key == other.key


def group_bootstrap(group: Group, base: Group, metric: str, n_resamples: int = RESAMPLES,
                    seed: int = SEED) -> Bootstrap | None:
    """The paired bootstrap of `group` against `base` for a table metric; None for a metric it does
    not cover, a Bootstrap with only a note when it cannot be computed."""
    if metric not in BOOTSTRAP_METRICS:
        return None
    theirs = {r.seed: r for r in base.runs}
    pairs = [(r, theirs[r.seed]) for r in group.runs if r.seed in theirs]
    if not pairs:
        return Bootstrap(BOOTSTRAP_METRICS[metric], note="no paired seeds")
    names = (group.runs[0].results.get("task") or {}).get("label_names") or []
    result = _cached(tuple(_Key(a) for a, _ in pairs), tuple(_Key(b) for _, b in pairs), len(names), n_resamples, seed)
    seeds = [a.seed for a, _ in pairs]
    if isinstance(result, str):
        return Bootstrap(BOOTSTRAP_METRICS[metric], seeds=seeds, note=result)
    found = result[BOOTSTRAP_METRICS[metric]]
    return Bootstrap(found.metric, found.delta, found.p, found.ci_low, found.ci_high, found.n_examples,
                     found.n_resamples, seeds)
