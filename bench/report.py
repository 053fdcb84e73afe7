"""Figures from the raw runs (the same arithmetic for every contender), medians, ratios, peaks, and
the Markdown report; the targets are bench/targets.py's."""

from __future__ import annotations

import statistics

from bench.pairs import identical_batches, step_ratios
from bench.targets import BF16, FP32, contender_precision, ftlab_default, targets

PRECISIONS = (FP32, BF16)

FIGURES = {  # key: (column title, format, higher is better)
    "train_samples_per_s": ("train samples/s", "{:.1f}", True),
    "step_ms": ("ms/step", "{:.0f}", False),
    "real_tokens_per_s": ("real tokens/s", "{:.0f}", True),
    "padded_tokens_per_s": ("padded tokens/s", "{:.0f}", True),
    "train_gflops": ("GFLOP/s (6·N_matmul)", "{:.1f}", True),
    "pct_of_peak": ("% of peak (its precision)", "{:.1f}", True),
    "eval_samples_per_s": ("eval samples/s", "{:.1f}", True),
    "first_step_s": ("1st step, from train call (s)", "{:.2f}", False),
    "first_step_from_launch_s": ("1st step, from launch (s)", "{:.1f}", False),
    "data_setup_s": ("data set-up (s)", "{:.3f}", False),
    "peak_rss_gib": ("peak RSS (GiB)", "{:.2f}", False),
    "test_accuracy": ("test acc", "{:.4f}", True),
    "test_macro_f1": ("test macro-F1", "{:.4f}", True),
    "wall_s": ("process wall (s)", "{:.1f}", False),
}
EPOCH_FIGURES = ("train_samples_per_s", "step_ms", "real_tokens_per_s", "train_gflops", "pct_of_peak",
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
    peak_runs = [r["child"] for r in records if r["phase"] == "peak"]
    peak = peak_runs[-1]  # one per benchmark (the last process)
    params = peak["params"]  # counted on the classifier the contenders train (a meta-device copy)
    summary: dict = {"window": {}, "epoch": {}}
    train = [r for r in records if r["phase"] == "train"]
    for record in train:
        fig = record["figures"] = derive(record, config)
        rate = peak["gflops"][record.get("precision") or contender_precision(record["contender"])]
        for row in (fig, fig.get("epoch")):
            if row:  # FLOPs = 6 x matmul params x real tokens: the products' work on the examples' tokens
                row["train_gflops"] = 6 * params["matmul"] * row["real_tokens_per_s"] / 1e9
                row["pct_of_peak"] = 100 * row["train_gflops"] / rate
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
    out = {"meta": meta, "config": config, "peak": peak_summary(peak), "params": params,
           "ftlab_default": ftlab_default(summary, peak, config), "data_setup": data, "summary": summary,
           "precision_seen": precision_seen(train), "identical_batches": identical_batches(records),
           "step_ratios": step_ratios(records)}
    out["ratios"] = ratios(summary)
    out["targets"] = targets(out, config)
    out["runs"] = records
    return out


def peak_summary(peak: dict) -> dict:
    """The peaks (GFLOP/s per precision: the model's FLOP-weighted forward mix), the other mixes, and
    every shape's rates (best and median of the reps)."""
    shapes = [{k: v for k, v in s.items() if k not in PRECISIONS}
              | {p: {"gflops_best": s[p]["gflops_best"], "gflops_median": s[p]["gflops_median"], "inner": s[p]["inner"]}
                 for p in PRECISIONS} for s in peak["shapes"]]
    return {"gflops": peak["gflops"], "training_mix_gflops": peak["training_mix_gflops"],
            "square_gflops": peak["square_gflops"], "tokens": peak["tokens"], "tokens_basis": peak["tokens_basis"],
            "threads": peak["threads"], "reps": peak["reps"], "model": peak["model"], "native_bf16": peak["native_bf16"],
            "native_bf16_why": peak["native_bf16_why"], "shapes": shapes}


def precision_seen(train: list[dict]) -> dict:
    """Per contender: the precision asked for, and what its forward ran in (bench.common.PrecisionWatch:
    autocast dtype and the first Linear's output dtype, in training and in evaluation), with `ok`:
    bf16 autocast in both for bf16-mixed, no autocast and fp32 outputs for 32-true (and, for ftlab,
    results.json's `precision.used` equal to the one asked for)."""
    out = {}
    for record in train:
        name = record["contender"]
        if name in out:
            continue
        asked = record.get("precision") or contender_precision(name)
        seen = (record.get("child") or {}).get("precision_seen") or {}
        want = {"autocast": "bfloat16", "output": "bfloat16"} if asked == BF16 else {"autocast": None, "output": "float32"}
        ok = all(phase in seen and all(seen[phase].get(k) == v for k, v in want.items()) for phase in ("train", "eval"))
        out[name] = {"asked": asked, "seen": seen, "ok": ok}
        used = ((record.get("ftlab") or {}).get("precision") or {}).get("used")  # ftlab's results.json says too
        if used is not None:
            out[name].update(ftlab_used=used, ok=ok and used == asked)
    return out


def _seen_cell(entry: dict | None) -> str:
    """"bf16/bf16": bf16 autocast in training / evaluation; "fp32/fp32": no autocast, fp32 outputs."""
    if not entry:
        return "-"
    short = {"bfloat16": "bf16", "float32": "fp32", "float16": "fp16"}

    def one(seen: dict | None) -> str:
        if seen is None:
            return "?"
        if seen["autocast"]:
            return short.get(seen["autocast"], seen["autocast"])
        return short.get(seen["output"], str(seen["output"])) + ("" if seen["output"] == "float32" else " (no autocast)")

    return "/".join(one(entry["seen"].get(p)) for p in ("train", "eval")) + ("" if entry["ok"] else " NOT AS ASKED")


def reference(name: str, rows: dict) -> str | None:
    """The ftlab row a contender is compared with: ftlab-full-bf16 for a bf16 contender (when it
    ran), ftlab-full otherwise: like with like."""
    if name.endswith("-bf16") and "ftlab-full-bf16" in rows:
        return "ftlab-full-bf16"
    return "ftlab-full" if "ftlab-full" in rows else None


def ratios(summary: dict) -> dict:
    """ftlab (same precision) / each contender, per figure and phase (above 1: ftlab's value is the
    larger); each row names its reference (`ref`)."""
    out = {}
    for phase, rows in summary.items():
        table = {}
        for name, row in rows.items():
            ref = reference(name, rows)
            if ref is None or name in ("ftlab-full", "ftlab-full-bf16"):
                continue
            table[name] = {k: rows[ref][k] / v for k, v in row.items() if k in FIGURES and k in rows[ref] and v}
            table[name]["ref"] = ref
        if table:
            out[phase] = table
    return out


def _fmt(key: str, value) -> str:
    if value is None:
        return "-"
    return FIGURES[key][1].format(value) if key in FIGURES else f"{value:.3g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return [line(header), "|" + "---|" * len(header)] + [line(r) for r in rows]


def _header(res: dict) -> list[str]:
    m, c, peak, params = res["meta"], res["config"], res["peak"], res["params"]
    w = c["warmup"]
    setup = (f"MiniLM-L6 on restaurant_sup, batch {c['batch_size']} (eval {c['eval_batch_size']}), lr {c['lr']}, "
             f"seed {c['seed']}, {c['threads']} thread{'s' * (c['threads'] != 1)}, AdamW wd 0.01, linear warmup 6%, clip 1.0")
    setup += f", train subset {c['train_examples']}" if c["train_examples"] else ""
    setup += f", test subset {c['eval_examples']}" if c["eval_examples"] else ""
    setup += " — QUICK SMOKE MODE, figures meaningless." if c["quick"] else "."
    g, sq = peak["gflops"], peak["square_gflops"]
    return [f"# ftlab benchmark, {m['date']}", "",
            f"{m['cpu_model']}, {m['cpus_usable']} usable CPUs, torch {m['versions']['torch']}, transformers "
            f"{m['versions']['transformers']}, commit {m['git_commit']}{' (dirty)' if m['git_dirty'] else ''}; "
            f"load average {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end; "
            f"duration {m['duration_seconds']:.0f} s; bf16 native: {'yes' if peak['native_bf16'] else 'no'} "
            f"({peak['native_bf16_why']}).", "", setup,
            *([f"bf16 rows: {c['bf16_skipped']}.", ""] if c.get("bf16_skipped") else []),
            f"Window: median of {c['reps']} repetition(s) of steps {w + 1}..{w + c['steps']} (after {w} warm-up "
            f"steps; hf-pad128: steps {w + 1}..{w + c['pad128_steps']}).", "",
            f"**Peaks** ({peak['threads']} thread{'s' * (peak['threads'] != 1)}, the model's matmul mix at T = {peak['tokens']} tokens, FLOP-weighted): "
            f"**fp32 {g[FP32]:.1f} GFLOP/s, bf16 {g[BF16]:.1f} GFLOP/s** (2048² square: {sq[FP32]:.1f} / "
            f"{sq[BF16]:.1f}). FLOPs = 6 x {params['matmul']:,} matmul parameters (Linear weights; not the "
            f"{params['embedding']:,} embedding parameters of the {params['total']:,}) x real tokens; each "
            f"contender's % is of the peak of its own precision. ftlab's default here: "
            f"{res['ftlab_default']['contender']} ({res['ftlab_default']['why']}).", ""]


def _peak_table(peak: dict) -> list[str]:
    rows = []
    for s in peak["shapes"]:
        fp, bf = s[FP32]["gflops_best"], s[BF16]["gflops_best"]
        rows.append([s["name"], f"{s['m']}x{s['k']} @ {s['k']}x{s['n']}", s["layout"], s["per_layer"] or "-",
                     f"{fp:.1f}", f"{bf:.1f}", f"{bf / fp:.2f}x"])
    for label, key in (("model's forward mix (THE peak)", "gflops"), ("training mix (+ weight gradients)",
                                                                      "training_mix_gflops")):
        fp, bf = peak[key][FP32], peak[key][BF16]
        rows.append([f"**{label}**", "FLOP-weighted", "", "", f"{fp:.1f}", f"{bf:.1f}", f"{bf / fp:.2f}x"])
    return ["", f"## Matmul peaks (best of {peak['reps']}; T = {peak['tokens']}: {peak['tokens_basis']})", ""] + _table(
        ["product", "shape", "layout", "per layer", "fp32 GFLOP/s", "bf16 GFLOP/s", "bf16 / fp32"], rows)


def markdown(res: dict) -> str:
    c, s = res["config"], res["summary"]
    lines = _header(res) + ["## Training window, evaluation, memory", ""]
    keys = [k for k in FIGURES if k != "ftlab_own_train_samples_per_s"]
    seen = res["precision_seen"]
    rows = [[n, _seen_cell(seen.get(n))] + [_fmt(k, r.get(k)) for k in keys] + [str(r["n"])]
            for n, r in s["window"].items()]
    lines += _table(["contender", "ran in (train/eval)"] + [FIGURES[k][0] for k in keys] + ["n"], rows)
    lines += [""] + [f"- **{n}**: {d}" for n, d in c["descriptions"].items()]
    lines += ["- ran in: the autocast dtype seen inside the forward (the first Linear layer), training / "
              "evaluation; fp32: no autocast, fp32 outputs",
              "- test acc / macro-F1 / process wall: runs that trained the window only (an epoch run's: next table)"]
    if s.get("epoch"):
        label = f"first {c['epoch_steps']} steps" if c["epoch_steps"] else "one full epoch"
        runs = max(r["n"] for r in s["epoch"].values())
        each = "one run each" if runs == 1 else f"median of {runs} runs each"
        lines += ["", f"## Full epoch ({label}, {each}; train samples/s from the train call to the last step)", ""]
        rows = [[n] + [_fmt(k, r.get(k)) for k in EPOCH_FIGURES] for n, r in s["epoch"].items()]
        lines += _table(["contender"] + [FIGURES[k][0] for k in EPOCH_FIGURES], rows)
    if res.get("step_ratios"):
        lines += ["", "## ftlab / plain loop step by step over the epoch's identical batches (bench/pairs.py)", ""]
        lines += _table(["pair", "median of per-step time ratios, per repetition", "epoch time ratio, per repetition"],
                        [[p, ", ".join(f"{v:.3f}" for v in r["step_median"]), ", ".join(f"{v:.3f}" for v in r["total"])]
                         for p, r in res["step_ratios"].items()])
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
    lines += _peak_table(res["peak"])
    for phase, table in res["ratios"].items():
        keys = [k for k in RATIO_FIGURES if any(k in r for r in table.values())]
        lines += ["", f"## Ratios ftlab (same precision) / contender ({phase}; > 1 means ftlab's figure is larger)", ""]
        lines += _table(["contender", "ftlab row"] + [FIGURES[k][0] for k in keys],
                        [[n, r["ref"]] + [f"{r[k]:.2f}" if k in r else "-" for k in keys] for n, r in table.items()])
    lines += ["", "## Targets", ""]
    verdict = {True: "PASS", False: "FAIL", None: "n/a"}
    lines += _table(["target", "measured", "threshold", "result", "basis"],
                    [[t["target"], "-" if t["measured"] is None else f"{t['measured']:.3g}", t["threshold"],
                      verdict[t["pass"]], t["basis"]] for t in res["targets"]])
    return "\n".join(lines) + "\n"
