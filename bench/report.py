"""Figures from the raw runs (the same arithmetic for every contender), medians, ratios, targets,
and the Markdown report."""

from __future__ import annotations

import statistics

FIGURES = {  # key: (column title, format, higher is better)
    "train_samples_per_s": ("train samples/s", "{:.1f}", True),
    "step_ms": ("ms/step", "{:.0f}", False),
    "real_tokens_per_s": ("real tokens/s", "{:.0f}", True),
    "padded_tokens_per_s": ("padded tokens/s", "{:.0f}", True),
    "train_gflops_6n": ("GFLOP/s (6N)", "{:.1f}", True),
    "pct_of_peak": ("% fp32 peak", "{:.1f}", True),
    "eval_samples_per_s": ("eval samples/s", "{:.1f}", True),
    "first_step_s": ("1st step, from train call (s)", "{:.2f}", False),
    "first_step_from_launch_s": ("1st step, from launch (s)", "{:.1f}", False),
    "data_setup_s": ("data set-up (s)", "{:.3f}", False),
    "peak_rss_gib": ("peak RSS (GiB)", "{:.2f}", False),
    "test_accuracy": ("test acc", "{:.4f}", True),
    "test_macro_f1": ("test macro-F1", "{:.4f}", True),
    "wall_s": ("process wall (s)", "{:.1f}", False),
}
EPOCH_FIGURES = ("train_samples_per_s", "step_ms", "real_tokens_per_s", "train_gflops_6n", "pct_of_peak",
                 "eval_samples_per_s", "test_accuracy", "test_macro_f1", "ftlab_own_train_samples_per_s", "wall_s")
FTLAB_OWN = {"train_samples_per_s": "ftlab_own_train_samples_per_s", "eval_samples_per_s": "ftlab_own_eval_samples_per_s",
             "time_to_first_step_s": "ftlab_own_first_step_s"}
FIGURES["ftlab_own_train_samples_per_s"] = ("ftlab's own train samples/s", "{:.1f}", True)
RATIO_FIGURES = ("train_samples_per_s", "step_ms", "real_tokens_per_s", "eval_samples_per_s", "first_step_s",
                 "first_step_from_launch_s", "data_setup_s", "peak_rss_gib", "test_accuracy", "test_macro_f1")


def _span(child: dict, lo: int, hi: int) -> dict:
    """Training figures over steps lo..hi-1 (0-based): from the end of step lo-1 (or the train call
    when lo == 0) to the end of step hi-1."""
    ends, batches = child["step_ends"], child["batches"]
    if len(ends) < hi or len(batches) < hi:
        raise ValueError(f"the run made {len(ends)} steps, the span needs {hi}")
    seconds = ends[hi - 1] - (ends[lo - 1] if lo > 0 else 0.0)
    samples, real, padded = (sum(b[i] for b in batches[lo:hi]) for i in range(3))
    return {"train_samples_per_s": samples / seconds, "step_ms": 1000 * seconds / (hi - lo),
            "real_tokens_per_s": real / seconds, "padded_tokens_per_s": padded / seconds,
            "span_seconds": seconds, "span_samples": samples, "span_steps": hi - lo, "pad_fraction": 1 - real / padded}


def derive(record: dict, config: dict) -> dict:
    """Window figures of a run (steps warmup+1 .. warmup+steps); an epoch run adds "epoch": the same
    figures from the train call to its last step."""
    child, own = record.get("child") or {}, record.get("ftlab") or {}
    warmup, steps = record["window"]
    fig = _span(child, warmup, warmup + steps)
    if record["epoch"]:
        fig["epoch"] = _span(child, 0, len(child["step_ends"]))
    fig["first_step_s"] = child["step_ends"][0]
    fig["first_step_from_launch_s"] = child["first_step_wall"] - record["launch_wall"]
    fig["eval_samples_per_s"] = child["eval_samples"] / child["eval_seconds"]
    fig["eval_samples"] = child["eval_samples"]
    fig["wall_s"] = record["wall_seconds"]
    if own:
        timing = own["timing"]
        fig.update(data_setup_s=timing["data_setup_seconds"], peak_rss_gib=timing["peak_rss_bytes"] / 2**30,
                   test_accuracy=own["test"]["test/accuracy"], test_macro_f1=own["test"]["test/macro_f1"],
                   cache_hit=timing["tokenization_cache_hit"], params=own["params"]["total"])
        fig.update({new: timing[old] for old, new in FTLAB_OWN.items()})
    else:
        fig.update(data_setup_s=child["data_setup_seconds"], peak_rss_gib=child["peak_rss_bytes"] / 2**30,
                   test_accuracy=child["test"]["accuracy"], test_macro_f1=child["test"]["macro_f1"],
                   params=child["params"]["total"], model_load_s=child["model_load_seconds"])
    return fig


# figures that depend on how long a run trained: the window table takes them from window-only runs
TRAINING_LENGTH = ("test_accuracy", "test_macro_f1", "wall_s", "ftlab_own_train_samples_per_s",
                   "ftlab_own_eval_samples_per_s", "ftlab_own_first_step_s")


def _median_table(rows: list[dict], drop: tuple = ()) -> dict:
    keys = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out = {}
    for key in sorted(keys):
        values = [r[key] for r in rows if key in r and not (key in drop and r.get("_epoch"))]
        if values:
            out[key] = statistics.median(values)
    return out | {"n": len(rows)}


def _epoch_row(record: dict) -> dict:
    """An epoch run's row: its whole-run training figures, the rest as measured in that run."""
    fig = record["figures"]
    return {**{k: v for k, v in fig.items() if k != "epoch"}, **fig["epoch"]}


def summarize(records: list[dict], config: dict, meta: dict) -> dict:
    peaks = [r["child"]["gflops_best"] for r in records if r["phase"] == "peak"]
    peak = max(peaks)
    others = [r for r in records if r["phase"] == "train" and not r["contender"].startswith("ftlab-")]
    base_params = others[0]["child"]["params"]["total"] if others else None  # the plain MiniLM classifier
    embedding_params = others[0]["child"]["params"]["embedding"] if others else None  # no matmul FLOPs per token
    summary: dict = {"window": {}, "epoch": {}}
    train = [r for r in records if r["phase"] == "train"]
    for record in train:
        fig = record["figures"] = derive(record, config)
        for row in (fig, fig.get("epoch")):
            if row:
                row["train_gflops_6n"] = 6 * (base_params or fig["params"]) * row["real_tokens_per_s"] / 1e9
                row["pct_of_peak"] = 100 * row["train_gflops_6n"] / peak
    for name in dict.fromkeys(r["contender"] for r in train):
        runs = [r for r in train if r["contender"] == name]
        summary["window"][name] = _median_table([{**r["figures"], "_epoch": r["epoch"]} for r in runs], TRAINING_LENGTH)
        if any(r["epoch"] for r in runs):
            summary["epoch"][name] = _median_table([_epoch_row(r) for r in runs if r["epoch"]])
    if not summary["epoch"]:
        del summary["epoch"]
    cold = [r["ftlab"]["timing"]["data_setup_seconds"] for r in records if r["phase"] == "data-cold"]
    warm = [r["figures"]["data_setup_s"] for r in train if r["contender"].startswith("ftlab-")]
    data = {"cold_seconds": cold, "warm_seconds": warm, "cold_median": statistics.median(cold),
            "warm_median": statistics.median(warm) if warm else None,
            "cold_cache_hit": [r["ftlab"]["timing"]["tokenization_cache_hit"]
                               for r in records if r["phase"] == "data-cold"]}
    data["speedup"] = data["cold_median"] / data["warm_median"] if warm else None
    matmul_n = next(r["child"]["n"] for r in records if r["phase"] == "peak")
    out = {"meta": meta, "config": config, "peak_gflops": {"best": peak, "runs": peaks, "n": matmul_n},
           "params_for_flops": base_params, "embedding_params": embedding_params, "data_setup": data,
           "summary": summary, "identical_batches_ftlab_plain": identical_batches(records)}
    out["ratios"] = ratios(summary)
    out["targets"] = targets(out, config)
    out["runs"] = records
    return out


def identical_batches(records: list[dict]) -> dict:
    """Did ftlab and the plain loop train on the same batches (sizes and token counts, in order)? In
    the window: every run's first warmup+steps batches; over the epoch: the epoch runs' batches."""
    runs = [r for r in records if r["phase"] == "train" and r["contender"] in ("ftlab-full", "plain")]
    if {r["contender"] for r in runs} != {"ftlab-full", "plain"}:
        return {}
    hi = min(len(r["child"]["batches"]) for r in runs)
    out = {"window": all(r["child"]["batches"][:hi] == runs[0]["child"]["batches"][:hi] for r in runs)}
    epoch = {r["contender"]: r["child"]["batches"] for r in runs if r["epoch"]}
    if len(epoch) == 2:
        out["epoch"] = epoch["ftlab-full"] == epoch["plain"]
    return out


def ratios(summary: dict, ref: str = "ftlab-full") -> dict:
    """ftlab-full / each contender, per figure and phase (above 1: ftlab's value is the larger)."""
    out = {}
    for phase, rows in summary.items():
        if ref not in rows:
            continue
        out[phase] = {name: {k: rows[ref][k] / v for k, v in row.items() if k in FIGURES and k in rows[ref] and v}
                      for name, row in rows.items() if name != ref}
    return out


def _get(summary: dict, phase: str, name: str, key: str):
    return summary.get(phase, {}).get(name, {}).get(key)


def targets(res: dict, config: dict) -> list[dict]:
    s, rows = res["summary"], []

    def add(target, value, threshold, ok, basis):
        rows.append({"target": target, "measured": value, "threshold": threshold,
                     "pass": None if value is None else bool(ok(value)), "basis": basis})

    def ratio(a, b):
        return a / b if a is not None and b else None

    ep = "epoch" if _get(s, "epoch", "ftlab-full", "train_samples_per_s") else "window"
    ftlab_rate = _get(s, ep, "ftlab-full", "train_samples_per_s")
    add("train samples/s: ftlab / HF studies' style (pad 128)",
        ratio(ftlab_rate, _get(s, "window", "hf-pad128", "train_samples_per_s")), ">= 4", lambda v: v >= 4,
        f"ftlab {ep}; pad-128 window (every full batch has the same {config['batch_size']}x128 shape, "
        "so its window rate is its epoch rate)")
    best_ep = "epoch" if ep == "epoch" and _get(s, "epoch", "hf-grouped", "train_samples_per_s") else "window"
    add("train samples/s: ftlab / best HF Trainer (dynamic + group_by_length)",
        ratio(_get(s, best_ep, "ftlab-full", "train_samples_per_s"), _get(s, best_ep, "hf-grouped", "train_samples_per_s")),
        ">= 1.1", lambda v: v >= 1.1, best_ep)
    same = res["identical_batches_ftlab_plain"]
    for phase in ("window", "epoch"):
        value = ratio(_get(s, phase, "ftlab-full", "step_ms"), _get(s, phase, "plain", "step_ms"))
        if value is not None:
            add(f"time/step: ftlab / plain loop, identical batches ({phase})", value, "<= 1.05", lambda v: v <= 1.05,
                f"same batches: {same.get(phase)}")
    d = res["data_setup"]
    add("data set-up: cold / warm tokenization cache (ftlab)", d["speedup"], ">= 10", lambda v: v >= 10,
        f"cold {d['cold_median']:.3f}s (n={len(d['cold_seconds'])}), warm "
        + (f"{d['warm_median']:.3f}s (n={len(d['warm_seconds'])})" if d["warm_median"] else "n/a"))
    add("peak RSS: ftlab LoRA / ftlab full", ratio(_get(s, "window", "ftlab-lora", "peak_rss_gib"),
        _get(s, "window", "ftlab-full", "peak_rss_gib")), "<= 1", lambda v: v <= 1, "window runs")
    hf_eval = [v for v in (_get(s, "window", n, "eval_samples_per_s") for n in ("hf-pad128", "hf-dynamic", "hf-grouped"))
               if v]
    add("eval samples/s: ftlab / fastest HF Trainer", ratio(_get(s, "window", "ftlab-full", "eval_samples_per_s"),
        max(hf_eval) if hf_eval else None), ">= 1", lambda v: v >= 1, "test split, window runs")
    acc_ep = "epoch" if _get(s, "epoch", "hf-grouped", "test_accuracy") is not None else "window"
    a, b = _get(s, acc_ep, "ftlab-full", "test_accuracy"), _get(s, acc_ep, "hf-grouped", "test_accuracy")
    add("test accuracy gap, ftlab vs best HF Trainer (comparability)", None if a is None or b is None else abs(a - b),
        f"<= {config['acc_tol']}", lambda v: v <= config["acc_tol"], acc_ep)
    add("make bench duration (s)", res["meta"]["duration_seconds"], "< 1200", lambda v: v < 1200,
        "this run's settings" + (" (--quick: not the real figure)" if config["quick"] else ""))
    return rows


def _fmt(key: str, value) -> str:
    if value is None:
        return "-"
    return FIGURES[key][1].format(value) if key in FIGURES else f"{value:.3g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return [line(header), "|" + "---|" * len(header)] + [line(r) for r in rows]


def _header(res: dict) -> list[str]:
    m, c, peak = res["meta"], res["config"], res["peak_gflops"]
    w = c["warmup"]
    setup = (f"MiniLM-L6 on restaurant_sup, batch {c['batch_size']} (eval {c['eval_batch_size']}), lr {c['lr']}, "
             f"seed {c['seed']}, {c['threads']} threads, AdamW wd 0.01, linear warmup 6%, clip 1.0")
    setup += f", train subset {c['train_examples']}" if c["train_examples"] else ""
    setup += f", test subset {c['eval_examples']}" if c["eval_examples"] else ""
    setup += " — QUICK SMOKE MODE, figures meaningless." if c["quick"] else "."
    return [f"# ftlab benchmark, {m['date']}", "",
            f"{m['cpu_model']}, {m['cpus_usable']} usable CPUs, torch {m['versions']['torch']}, transformers "
            f"{m['versions']['transformers']}, commit {m['git_commit']}{' (dirty)' if m['git_dirty'] else ''}; "
            f"load average {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end; "
            f"duration {m['duration_seconds']:.0f} s.", "", setup,
            f"Window: median of {c['reps']} repetition(s) of steps {w + 1}..{w + c['steps']} (after {w} warm-up "
            f"steps; hf-pad128: steps {w + 1}..{w + c['pad128_steps']}). fp32 peak (matmul {peak['n']}²): "
            f"{peak['best']:.1f} GFLOP/s; FLOPs = 6 x {res['params_for_flops'] or 0:,} params x real tokens.", ""]


def markdown(res: dict) -> str:
    c, s = res["config"], res["summary"]
    lines = _header(res) + ["## Training window, evaluation, memory", ""]
    keys = [k for k in FIGURES if k != "ftlab_own_train_samples_per_s"]
    rows = [[n] + [_fmt(k, r.get(k)) for k in keys] + [str(r["n"])] for n, r in s["window"].items()]
    lines += _table(["contender"] + [FIGURES[k][0] for k in keys] + ["n"], rows)
    lines += [""] + [f"- **{n}**: {d}" for n, d in c["descriptions"].items()]
    lines += ["- test acc / macro-F1 / process wall: runs that trained the window only (an epoch run's: next table)"]
    if s.get("epoch"):
        label = f"first {c['epoch_steps']} steps" if c["epoch_steps"] else "one full epoch"
        runs = max(r["n"] for r in s["epoch"].values())
        each = "one run each" if runs == 1 else f"median of {runs} runs each"
        lines += ["", f"## Full epoch ({label}, {each}; train samples/s from the train call to the last step)", ""]
        rows = [[n] + [_fmt(k, r.get(k)) for k in EPOCH_FIGURES] for n, r in s["epoch"].items()]
        lines += _table(["contender"] + [FIGURES[k][0] for k in EPOCH_FIGURES], rows)
    own = [[f"{p}/{n}", _fmt("train_samples_per_s", r.get("ftlab_own_train_samples_per_s")),
            _fmt("eval_samples_per_s", r.get("ftlab_own_eval_samples_per_s")),
            _fmt("first_step_s", r.get("ftlab_own_first_step_s"))]
           for p in ("window", "epoch") for n, r in s.get(p, {}).items() if n.startswith("ftlab-")]
    lines += ["", "## ftlab's own timers (results.json: all steps incl. the first; eval = validation + test)", ""]
    lines += _table(["run", "train samples/s", "eval samples/s", "time to first step (s)"], own)
    d = res["data_setup"]
    lines += ["", "## ftlab data set-up (parse + tokenize + save vs load from the tokenization cache)", ""]
    lines += _table(["cold (s)", "warm (s)", "cold / warm"], [[_fmt("data_setup_s", d["cold_median"]),
                    _fmt("data_setup_s", d["warm_median"]), "-" if d["speedup"] is None else f"{d['speedup']:.1f}x"]])
    for phase, table in res["ratios"].items():
        keys = [k for k in RATIO_FIGURES if any(k in r for r in table.values())]
        lines += ["", f"## Ratios ftlab-full / contender ({phase}; > 1 means ftlab's figure is larger)", ""]
        lines += _table(["contender"] + [FIGURES[k][0] for k in keys],
                        [[n] + [f"{r[k]:.2f}" if k in r else "-" for k in keys] for n, r in table.items()])
    lines += ["", "## Targets", ""]
    verdict = {True: "PASS", False: "FAIL", None: "n/a"}
    lines += _table(["target", "measured", "threshold", "result", "basis"],
                    [[t["target"], "-" if t["measured"] is None else f"{t['measured']:.3g}", t["threshold"],
                      verdict[t["pass"]], t["basis"]] for t in res["targets"]])
    return "\n".join(lines) + "\n"
