"""ftlab against the plain loop over identical batches (PAIRS: the fp32 pair and the bf16 pair): were
the batches the same, and how do their steps compare one by one over the epoch runs?

A median of 3 epoch-level ratios on a shared 2-core machine mixes ftlab's overhead with whatever
else ran during each repetition. Step by step, over the same batches in the same order, the median
of the per-step time ratios is far less sensitive to a slow stretch, and its spread over the
repetitions says how much of an epoch-level gap is noise."""

from __future__ import annotations

import statistics

from bench.targets import PAIRS


def identical_batches(records: list[dict]) -> dict:
    """Did ftlab and the plain loop (fp32 pair, bf16 pair) train on the same batches (sizes and
    token counts, in order)? In the window: every run's first warmup+steps batches; over the epoch:
    the epoch runs' batches. Keyed "ftlab-full/plain" and "ftlab-full-bf16/plain-bf16"."""
    out = {}
    for pair in PAIRS:
        runs = [r for r in records if r["phase"] == "train" and r["contender"] in pair]
        if {r["contender"] for r in runs} != set(pair):
            continue
        hi = min(len(r["child"]["batches"]) for r in runs)
        same = {"window": all(r["child"]["batches"][:hi] == runs[0]["child"]["batches"][:hi] for r in runs)}
        epoch = {r["contender"]: r["child"]["batches"] for r in runs if r["epoch"]}
        if len(epoch) == 2:
            same["epoch"] = epoch[pair[0]] == epoch[pair[1]]
        out["/".join(pair)] = same
    return out


def step_durations(child: dict) -> list[float]:
    """Each optimizer step's seconds: from the end of the one before (the train call for the first)."""
    ends = child["step_ends"]
    return [b - a for a, b in zip([0.0, *ends], ends)]


def step_ratios(records: list[dict]) -> dict:
    """Per repetition of each pair's epoch runs over identical batches: the median of ftlab's / the
    plain loop's per-step times ("step_median"), and the ratio of their sums ("total", the epoch-level
    figure). Keyed as identical_batches; pairs whose epoch batches differ are left out."""
    out = {}
    for pair in PAIRS:
        runs = {(r["contender"], r["rep"]): r["child"] for r in records
                if r["phase"] == "train" and r["epoch"] and r["contender"] in pair}
        reps = sorted({rep for _, rep in runs if (pair[0], rep) in runs and (pair[1], rep) in runs})
        medians, totals = [], []
        for rep in reps:
            a, b = runs[(pair[0], rep)], runs[(pair[1], rep)]
            if a["batches"] != b["batches"]:
                continue
            ta, tb = step_durations(a), step_durations(b)
            medians.append(statistics.median(x / y for x, y in zip(ta, tb)))
            totals.append(sum(ta) / sum(tb))
        if medians:
            out["/".join(pair)] = {"step_median": medians, "total": totals}
    return out
