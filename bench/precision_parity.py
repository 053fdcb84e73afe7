"""`python -m bench.precision_parity` (`make bench-precision`): does bf16-mixed train to fp32's accuracy?

The evidence behind `trainer.precision=auto` (ftlab/precision.py). For each method and dataset, the
real MiniLM is trained at the default settings (trainer.max_epochs, learning rate, batch) over the
same seeds in `32-true` and in `bf16-mixed`, the two precisions side by side (two processes, one
torch thread each, so that both see the same machine load). The table gives, per precision, test
accuracy and macro-F1 (mean ± std over seeds), train samples/s, and the bf16 - fp32 difference with
the paired bootstrap over test examples pooled over the seeds (ftlab/report/significance.py, the
report's test: p and the 95% CI of the difference). Writes <out>/precision_parity-<date>.json and .md;
the run folders stay under <out>/precision_parity-<date>/ for `ftlab report`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = ("32-true", "bf16-mixed")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.precision_parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["lora", "full"])
    p.add_argument("--datasets", nargs="+", default=["restaurant_sup", "acl_sup"])
    p.add_argument("--pairs", nargs="+", metavar="METHOD:DATASET",
                   help="the rows instead of every method x dataset (e.g. lora:restaurant_sup full:acl_sup)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--model", default="minilm")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--extra", nargs="*", default=[], help="more overrides for every run (e.g. trainer.max_epochs=1)")
    return p.parse_args(argv)


def completed_runs(folder: Path) -> list[dict]:
    runs = [json.loads(p.read_text()) for p in folder.glob("*/results.json")]
    return sorted((r for r in runs if r.get("status") == "completed"), key=lambda r: r["seed"])


def sweep(folder: Path, model: str, method: str, dataset: str, precision: str, seeds: list[int], extra: list[str]) -> dict:
    """One precision's runs of a (method, dataset): one `ftlab -m` sweep over the seeds. A folder that
    already holds every seed's completed run (an earlier, stopped measurement) is reused; one cut short
    is run again."""
    command = [sys.executable, "-m", "ftlab", "-m", f"model={model}", f"peft={method}", f"dataset={dataset}",
               f"trainer.precision={precision}", f"seed={','.join(map(str, seeds))}", "threads=1",
               "trainer.enable_progress_bar=false", "save.model=false", "logger=none", *extra,
               f"hydra.sweep.dir={folder}"]
    runs = completed_runs(folder) if folder.is_dir() else []
    if [r["seed"] for r in runs] == sorted(seeds):
        seconds = json.loads((folder / "sweep.json").read_text())["seconds"] if (folder / "sweep.json").is_file() else None
        return {"command": " ".join(command[1:]), "seconds": seconds, "runs": runs, "reused": True}
    if folder.exists():
        shutil.rmtree(folder)
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    seconds = time.perf_counter() - started
    (folder / "sweep.json").write_text(json.dumps({"command": command[1:], "seconds": seconds}) + "\n")
    return {"command": " ".join(command[1:]), "seconds": seconds, "runs": completed_runs(folder)}


def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "values": values}


def compare(fp32: dict, bf16: dict) -> dict:
    """bf16 minus fp32: the paired bootstrap over test examples, seeds paired by seed."""
    from ftlab import predictions
    from ftlab.report.significance import paired_bootstrap

    def preds(sweep_result) -> tuple[list, list]:
        rows = [predictions.load(r["run_dir"], "test") for r in sweep_result["runs"]]
        return [x["label"] for x in rows[0]], [[x["pred"] for x in r] for r in rows]

    labels, mine = preds(bf16)
    labels_fp32, theirs = preds(fp32)
    assert labels == labels_fp32, "the two precisions were tested on different examples"
    tests = paired_bootstrap(labels, mine, theirs, num_classes=len(fp32["runs"][0]["task"]["label_names"]))
    return {m: {"delta": t.delta, "ci": [t.ci_low, t.ci_high], "p": t.p, "n_examples": t.n_examples}
            for m, t in tests.items()}


def cell(stats: dict, k: float = 100.0) -> str:
    return f"{stats['mean'] * k:.2f}" + (f" ± {stats['std'] * k:.2f}" if stats["std"] is not None else "")


def markdown(record: dict) -> str:
    seeds = ", ".join(map(str, record["seeds"]))
    lines = [f"# Precision parity, {record['date']}", "",
             f"{record['model']}, seeds {seeds}, ftlab defaults otherwise; {record['machine']}. "
             "Test accuracy and macro-F1 in %, mean ± std over seeds; samples/s: training throughput over the "
             "run (mean over seeds, each precision in its own process with one torch thread, both side by side). "
             "Δ: bf16-mixed minus 32-true with the paired bootstrap over test examples pooled over the seeds "
             "(95% CI, two-sided p; B = 10,000).", "",
             "| method | dataset | accuracy fp32 | accuracy bf16 | Δ acc [95% CI] (p) | macro-F1 fp32 | macro-F1 bf16 "
             "| Δ macro-F1 [95% CI] (p) | samples/s fp32 | samples/s bf16 | speed-up |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in record["rows"]:
        f, b, d = row["32-true"], row["bf16-mixed"], row["difference"]
        delta = lambda m: f"{d[m]['delta'] * 100:+.2f} [{d[m]['ci'][0] * 100:+.2f}, {d[m]['ci'][1] * 100:+.2f}] ({d[m]['p']:.3f})"  # noqa: E731
        lines.append(f"| {row['method']} | {row['dataset']} | {cell(f['accuracy'])} | {cell(b['accuracy'])} | "
                     f"{delta('accuracy')} | {cell(f['macro_f1'])} | {cell(b['macro_f1'])} | {delta('macro_f1')} | "
                     f"{f['samples_per_s']['mean']:.1f} | {b['samples_per_s']['mean']:.1f} | "
                     f"{b['samples_per_s']['mean'] / f['samples_per_s']['mean']:.2f}x |")
    lines += ["", "Commands (one per row and precision):", ""]
    lines += [f"    python {row[p]['command']}" for row in record['rows'] for p in PRECISIONS]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    from ftlab.precision import native_bf16

    date = dt.date.today().isoformat()
    root = args.out / f"precision_parity-{date}"
    rows = []
    pairs = [tuple(pair.split(":", 1)) for pair in args.pairs] if args.pairs else \
        [(method, dataset) for method in args.methods for dataset in args.datasets]
    for method, dataset in pairs:
        with ThreadPoolExecutor(len(PRECISIONS)) as pool:
            futures = {p: pool.submit(sweep, root / f"{method}_{dataset}_{p}", args.model, method, dataset, p,
                                      args.seeds, args.extra) for p in PRECISIONS}
            done = {p: f.result() for p, f in futures.items()}
        row = {"method": method, "dataset": dataset, "difference": compare(done["32-true"], done["bf16-mixed"])}
        for p, result in done.items():
            runs = result["runs"]
            row[p] = {"command": result["command"], "seconds": result["seconds"],
                      "accuracy": summary([r["test"]["test/accuracy"] for r in runs]),
                      "macro_f1": summary([r["test"]["test/macro_f1"] for r in runs]),
                      "samples_per_s": summary([r["timing"]["train_samples_per_s"] for r in runs]),
                      "run_dirs": [r["run_dir"] for r in runs]}
        rows.append(row)
        print(f"{method} {dataset}: " + ", ".join(f"{p} {cell(row[p]['macro_f1'])}" for p in PRECISIONS), flush=True)
    native, device = native_bf16()
    record = {"date": date, "model": args.model, "seeds": args.seeds, "extra": args.extra, "rows": rows,
              "machine": f"{device}" + ("" if native else " (bf16 not native)")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"precision_parity-{date}.json").write_text(json.dumps(record, indent=2) + "\n")
    text = markdown(record)
    (args.out / f"precision_parity-{date}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
