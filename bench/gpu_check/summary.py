"""The GPU check's figures, from what its jobs left behind, by the CPU benchmark's own arithmetic
(bench.report.derive: the window's samples, real and padded tokens over its time), plus what only a
GPU run has: MFU (6 x N_matmul x real tokens/s, against the H200's specified dense bf16 peak and
against the measured matmul peak) and peak CUDA memory next to ftlab's estimate. Then the JSON and
the Markdown tables. It reads whatever exists, so a report written half-way (a run stopped by its
time limit) holds the jobs done so far."""

from __future__ import annotations

import json
from pathlib import Path

from bench.gpu_check.plan import CONTENDERS

GiB = 2**30
RATIO_KEYS = ("train_samples_per_s", "real_tokens_per_s", "step_ms", "eval_samples_per_s", "cuda_max_allocated_gib")
BENCH_COLUMNS = (  # (key, title, format)
    ("train_samples_per_s", "train samples/s", "{:.1f}"), ("real_tokens_per_s", "real tokens/s", "{:.0f}"),
    ("padded_tokens_per_s", "padded tokens/s", "{:.0f}"), ("step_ms", "ms/step", "{:.1f}"),
    ("train_tflops", "TFLOP/s (6·N·tokens)", "{:.3g}"), ("mfu_spec_pct", "MFU % (spec peak)", "{:.1f}"),
    ("mfu_measured_pct", "MFU % (measured peak)", "{:.1f}"), ("eval_samples_per_s", "eval samples/s", "{:.1f}"),
    ("cuda_max_allocated_gib", "peak CUDA alloc (GiB)", "{:.2f}"), ("estimate_gib", "ftlab estimate (GiB)", "{:.2f}"),
    ("peak_rss_gib", "peak RSS (GiB)", "{:.2f}"), ("test_accuracy", "test acc", "{:.3f}"),
)


def results_json(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _gib(n) -> float | None:
    return None if n is None else n / GiB


def bench_records(jobs: list[dict], results: dict, models: dict, peak: dict) -> tuple[list[dict], dict]:
    """One record per finished benchmark run, with bench.report.derive's figures and the GPU's; and
    {job: why} for a run that finished without what its figures need."""
    records, errors = [], {}
    for job in jobs:
        outcome = results.get(job["name"]) or {}
        if job.get("record", {}).get("phase") != "train" or outcome.get("status") != "ok":
            continue
        try:
            records.append(_record(job, outcome, models["encoder"]["params"]["matmul"], peak))
        except (OSError, KeyError, ValueError, TypeError, IndexError, ZeroDivisionError) as exc:
            errors[job["name"]] = f"{type(exc).__name__}: {exc}"
    return records, errors


def _record(job: dict, outcome: dict, matmul: int, peak: dict) -> dict:
    """A run's record as bench/run.py keeps it (its step log in "child", ftlab's results.json in "ftlab"),
    its figures (bench.report.derive), MFU and peak CUDA memory next to the estimate."""
    from bench.report import derive
    from bench.run import Bench

    record = {**job["record"], "launch_wall": outcome["start_wall"], "wall_seconds": outcome["seconds"]}
    if job["kind"] == "ftlab":
        Bench.read_ftlab(record)
        memory = (results_json(record["run_dir"]) or {}).get("memory") or {}
        cuda, estimate = memory.get("measured", {}).get("cuda_max_allocated_bytes"), memory.get("estimate", {})
    else:
        record["child"] = json.loads(Path(job["out"]).read_text())
        cuda, estimate = record["child"].get("cuda_max_allocated_bytes"), {}
    fig = record["figures"] = derive(record, {})
    fig["train_tflops"] = 6 * matmul * fig["real_tokens_per_s"] / 1e12
    fig["mfu_measured_pct"] = 100 * fig["train_tflops"] / peak["tflops_best"]
    if peak.get("spec_tflops"):
        fig["mfu_spec_pct"] = 100 * fig["train_tflops"] / peak["spec_tflops"]
    for key, value in (("cuda_max_allocated_gib", _gib(cuda)), ("estimate_gib", _gib(estimate.get("total_bytes")))):
        if value is not None:
            fig[key] = value
    return record


def bench_summary(records: list[dict]) -> dict:
    """Medians per contender over its repetitions, ftlab / HF ratios, what each forward ran in."""
    from bench.report import _median_table, precision_seen

    rows = {c: _median_table([r["figures"] for r in records if r["contender"] == c])
            for c in CONTENDERS if any(r["contender"] == c for r in records)}
    ftlab, hf = (rows.get(c) for c in CONTENDERS)
    ratios = {k: ftlab[k] / hf[k] for k in RATIO_KEYS if ftlab and hf and ftlab.get(k) and hf.get(k)}
    return {"rows": rows, "ratios_ftlab_over_hf": ratios, "precision_seen": precision_seen(records)}


def _expectation(name: str, res: dict, on_cuda: bool) -> str | None:
    """Why a completed run did not take the path it was asked for (None: it did)."""
    memory = res.get("memory") or {}
    dims = (memory.get("estimate") or {}).get("dims") or {}
    device = (memory.get("measured") or {}).get("device", "")
    used = (res.get("precision") or {}).get("used")
    if on_cuda and device and not str(device).startswith("cuda"):
        return f"trained on {device}, not CUDA"
    if name == "fp16-mixed" and used and used != "16-mixed":
        return f"precision used: {used}"
    if name == "qlora" and dims and not dims.get("weights_4bit"):
        return "the weights were not 4-bit"
    if name in ("qlora", "gradient-checkpointing") and dims and not dims.get("gradient_checkpointing"):
        return "gradient checkpointing was off"
    return None  # (what results.json does not hold is not judged)


def check_rows(jobs: list[dict], results: dict, on_cuda: bool) -> list[dict]:
    rows = []
    for job in jobs:
        if "check" not in job:
            continue
        outcome = results.get(job["name"]) or {"status": "not run"}  # a report written half-way
        row = {**job["check"], "status": {"ok": "pass", "failed": "fail"}.get(outcome["status"], outcome["status"]),
               "seconds": outcome.get("seconds"), "command": "python -m ftlab " + " ".join(job["args"])}
        for key in ("reason", "refused", "error_tail", "log"):
            if outcome.get(key):
                row[key] = outcome[key]
        res = results_json(job["record"]["run_dir"]) if job["kind"] == "ftlab" else None
        if res is not None:
            memory = res.get("memory") or {}
            estimate, measured = memory.get("estimate") or {}, memory.get("measured") or {}
            row["evidence"] = {"status": res.get("status"), "precision": (res.get("precision") or {}).get("used"),
                               "optimizer": estimate.get("optimizer"), "device": measured.get("device"),
                               "weights_4bit": (estimate.get("dims") or {}).get("weights_4bit"),
                               "gradient_checkpointing": (estimate.get("dims") or {}).get("gradient_checkpointing"),
                               "cuda_max_allocated_gib": _gib(measured.get("cuda_max_allocated_bytes")),
                               "estimate_gib": _gib(estimate.get("total_bytes")),
                               "time_to_first_step_s": (res.get("timing") or {}).get("time_to_first_step_s"),
                               "test_accuracy": (res.get("test") or {}).get("test/accuracy")}
            why = "results.json: " + str(res.get("status")) if res.get("status") != "completed" else \
                _expectation(job["check"]["name"], res, on_cuda)
            if row["status"] == "pass" and why:
                row.update(status="fail", error_tail=f"the run did not take this path: {why}")
        rows.append(row)
    return rows


# ---- Markdown --------------------------------------------------------------------------------------
def _fmt(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
    return [line(header), "|" + "---|" * len(header)] + [line(r) for r in rows]


def _first_error_line(text: str | None) -> str:
    lines = [x.strip() for x in (text or "").splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith(("error:", "RuntimeError", "torch.", "ValueError", "AssertionError"))
              or "Error" in x.split(":")[0]]
    return (errors or lines or [""])[-1][:200]


def markdown(res: dict) -> str:
    m, s, peak, b = res["meta"], res["settings"], res["peak"], res["bench"]
    title = "ftlab GPU check" + (" — DRY RUN on CPU (tiny models: figures meaningless)" if s["dry_run"] else "")
    v = m["versions"]
    lines = [f"# {title}, {m['date']}", "",
             f"{m['device']}; torch {v.get('torch')}, transformers {v.get('transformers')}, lightning {v.get('lightning')}, "
             f"peft {v.get('peft')}, bitsandbytes {v.get('bitsandbytes')}, python {v.get('python')}; commit "
             f"{m['git_commit']}{' (dirty)' if m['git_dirty'] else ''}; {m['duration_seconds']:.0f} s "
             f"({'complete' if res['complete'] else 'PARTIAL: stopped before the end'}).", ""]
    if not peak:  # the prepare job failed: nothing else ran
        prepare = res["jobs"].get("prepare") or {}
        return "\n".join(lines + [f"**prepare failed**: {_first_error_line(prepare.get('error_tail'))} "
                                   "(JSON `jobs.prepare.error_tail`)", ""])
    lines += [f"**Peak bf16**: specification {_fmt(peak.get('spec_tflops'), '{:.0f}')} TFLOP/s (dense); measured "
              f"{peak['n']}³ matmul {peak['tflops_best']:.4g} TFLOP/s best, {peak['tflops_median']:.4g} median "
              f"({peak['device']}, {peak['how']}).", ""]
    enc = res["models"]["encoder"]
    lines += [f"## ftlab vs the HF Trainer: random {enc['architecture']} ({enc['config'].get('num_hidden_layers')} "
              f"layers, hidden {enc['config'].get('hidden_size')}), restaurant_sup, batch {s['batch_size']}, bf16-mixed", "",
              f"Alternating A B, {s['reps']} round(s); medians of steps {s['warmup'] + 1}..{s['warmup'] + s['steps']}, "
              f"on CUDA each step's end stamped after a synchronize. FLOPs = 6 x {enc['params']['matmul']:,} matmul parameters "
              f"(Linear weights, not the {enc['params']['embedding']:,} embedding ones) x real tokens.", ""]
    seen = b["precision_seen"]
    rows = [[name, "/".join(str((seen.get(name, {}).get("seen", {}).get(p) or {}).get("autocast")) for p in ("train", "eval"))
             + ("" if seen.get(name, {}).get("ok") else " NOT AS ASKED")]
            + [_fmt(row.get(k), f) for k, _, f in BENCH_COLUMNS] + [str(row["n"])] for name, row in b["rows"].items()]
    lines += _table(["contender", "autocast (train/eval)"] + [t for _, t, _ in BENCH_COLUMNS] + ["n"], rows)
    if b["ratios_ftlab_over_hf"]:
        lines += ["", "ftlab / HF Trainer: " + ", ".join(f"{k} {x:.2f}x" for k, x in b["ratios_ftlab_over_hf"].items())]
    est = res.get("estimate") or {}
    if est.get("total_bytes"):
        lines += ["", f"`ftlab estimate` of the ftlab run at {est['batch_size']} x {est['max_length']} on {est['device']}: "
                  f"{est['total_bytes'] / GiB:.2f} GiB (" + ", ".join(f"{k} {x / GiB:.2f}" for k, x in est["bytes"].items())
                  + "); the runs pad per batch, so their activations are smaller."]
    elif res.get("estimate_error"):
        lines += ["", f"`ftlab estimate` failed: {_first_error_line(res['estimate_error'])}"]
    lines += ["", "## CUDA-only paths (each a short real `python -m ftlab` run)", ""]
    rows = []
    for c in res["checks"]:
        ev = c.get("evidence") or {}
        note = c.get("cpu_standin") or ""
        if c.get("refused"):
            note += f" — refused: {c['refused']}"
        if c["status"] == "fail":
            note = _first_error_line(c.get("error_tail"))
        elif c["status"] == "skipped":
            note = c.get("reason", "")
        rows.append([c["name"], " ".join(c["overrides"]), c["status"].upper(), _fmt(c.get("seconds"), "{:.1f}"),
                     _fmt(ev.get("cuda_max_allocated_gib"), "{:.2f}"), _fmt(ev.get("estimate_gib"), "{:.2f}"),
                     ev.get("precision") or "-", note.strip(" —")])
    lines += _table(["check", "overrides", "result", "seconds", "peak CUDA alloc (GiB)", "estimate (GiB)", "precision",
                     "note"], rows)
    lines += ["", "Every check's command, evidence and error tail: the JSON (`checks`)."]
    if res["failed_jobs"]:
        lines += ["", "**Failed jobs**: " + ", ".join(res["failed_jobs"]) + " (error tails in the JSON: `jobs`)."]
    return "\n".join(lines) + "\n"
