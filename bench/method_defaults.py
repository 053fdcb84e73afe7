"""`python -m bench.method_defaults` (`make bench-defaults`): the learning-rate searches behind each
PEFT method's default (conf/peft/<method>.yaml), with the real MiniLM, through ftlab's own search.

For every method and dataset (the datasets side by side, one torch thread each), one grid search
over the method's candidate learning rates
(`hydra/sweeper=optuna hydra/sweeper/sampler=grid`, ftlab's sweeper, one trial per rate) at the
default trainer.max_epochs, on a fixed training subset (`--train`, the same for every trial and seed)
and the full validation split. The default is the rate with the best validation macro-F1 averaged
over the datasets; the table gives, per dataset, its value, the search's best, and the majority-class
baseline (every example given the commonest validation label: macro-F1 = 2s/(1+s)/K for its share s
of K labels). Writes <out>/method_defaults-<date>.json and .md; each search folder stays under
<out>/method_defaults-<date>/ for `ftlab report`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("restaurant_sup", "acl_sup")
# candidate rates per method: each method's usual rate and one x3-x10 above it (short runs train
# fewer steps than the studies': head, bitfit and the adapters need more than their papers' rates)
CANDIDATES = {
    "full": (5e-5, 1.5e-4),
    "lora": (1e-3, 3e-3),
    "dora": (1e-3, 3e-3),
    "bitfit": (1e-2, 3e-2),
    "head": (1e-1, 3e-1),
    "houlsby": (5e-4, 2e-3),
    "pfeiffer": (3e-3, 1e-2),
    "ia3": (3e-3, 1e-2),
    "prefix": (1e-2, 3e-2),
    "prompt": (3e-2, 1e-1),
}


def majority_macro_f1(dataset: str) -> float:
    """Validation macro-F1 of predicting the commonest validation label for every example."""
    from hydra.utils import instantiate

    from ftlab.config import compose

    source = instantiate(compose([f"dataset={dataset}"]).dataset)
    labels = source.load().splits["validation"]["label"]
    share = Counter(labels).most_common(1)[0][1] / len(labels)
    return (2 * share / (1 + share)) / len(source.task().label_names)


def search(method: str, dataset: str, out: Path, train: int, threads: int | None) -> dict:
    rates = ",".join(repr(r) for r in CANDIDATES[method])
    folder = out / dataset / method
    command = [sys.executable, "-m", "ftlab", "-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=grid",
               f"peft={method}", f"dataset={dataset}", f"optimizer.lr=choice({rates})",
               f"data.max_examples.train={train}", "save.model=false", "trainer.enable_progress_bar=false",
               f"threads={threads}", f"hydra.sweep.dir={folder}"]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    trials = {}
    for run_dir in folder.glob("[0-9]*_*"):
        results = json.loads((run_dir / "results.json").read_text())
        if results.get("status") == "completed":
            trials[results["config"]["optimizer"]["lr"]] = results["val"]["val/macro_f1"]
    return {"method": method, "dataset": dataset, "command": " ".join(command[2:]), "returncode": proc.returncode,
            "seconds": round(seconds, 1), "val_macro_f1_by_lr": trials, "folder": str(folder),
            "stderr_tail": proc.stderr[-1500:] if proc.returncode else ""}


def choose_defaults(runs: list[dict]) -> dict[str, float]:
    """Per method, the rate with the best validation macro-F1 averaged over the datasets."""
    chosen = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r["val_macro_f1_by_lr"] for r in runs if r["method"] == method]
        shared = set.intersection(*(set(m) for m in mine)) if mine else set()
        if shared:
            chosen[method] = max(shared, key=lambda lr: statistics.fmean(m[lr] for m in mine))
    return chosen


def markdown(payload: dict) -> str:
    runs, defaults, baseline = payload["runs"], payload["defaults"], payload["majority_macro_f1"]
    lines = [f"# Method defaults ({payload['date']}): MiniLM, validation macro-F1 (%)", "",
             f"Training subset {payload['train']} examples (fixed, `data.max_examples.train`), full validation split, "
             f"default trainer.max_epochs, seed 42; one grid trial per candidate rate (`python -m bench.method_defaults "
             f"{' '.join(payload['argv'])}`).", "",
             "Majority-class baseline: " + ", ".join(f"{d} {100 * v:.1f}" for d, v in baseline.items()), "",
             "| method | default lr | " + " | ".join(f"{d}: at default / best (lr)" for d in payload["datasets"])
             + " | trials | time (s) |",
             "| --- | --- | " + " | ".join("---" for _ in payload["datasets"]) + " | --- | --- |"]
    for method in dict.fromkeys(r["method"] for r in runs):
        cells, n, seconds = [], 0, 0.0
        for dataset in payload["datasets"]:
            run = next((r for r in runs if r["method"] == method and r["dataset"] == dataset), None)
            if run is None or not run["val_macro_f1_by_lr"]:
                cells.append("failed" if run else "-")
                continue
            by_lr = run["val_macro_f1_by_lr"]
            best = max(by_lr, key=by_lr.get)
            at = by_lr.get(defaults.get(method))
            cells.append(f"{'-' if at is None else f'{100 * at:.1f}'} / {100 * by_lr[best]:.1f} ({best:g})")
            n, seconds = n + len(by_lr), seconds + run["seconds"]
        lr = defaults.get(method)
        lines.append(f"| {method} | {'-' if lr is None else f'{lr:g}'} | " + " | ".join(cells) + f" | {n} | {seconds:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.method_defaults", description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--train", type=int, default=600, help="training examples per trial (fixed subset)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per search")
    parser.add_argument("--parallel", type=int, default=2, help="searches at once (one per dataset)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    date = dt.date.today().isoformat()
    out = args.out / f"method_defaults-{date}"
    payload = {"date": date, "argv": argv if argv is not None else sys.argv[1:], "train": args.train,
               "datasets": args.datasets, "runs": [],
               "majority_macro_f1": {d: majority_macro_f1(d) for d in args.datasets}}
    with ThreadPoolExecutor(args.parallel) as pool:  # the datasets' searches side by side, a thread each
        for method in args.methods:
            for run in pool.map(lambda d: search(method, d, out, args.train, args.threads), args.datasets):
                payload["runs"].append(run)
                print(json.dumps({k: v for k, v in run.items() if k != "stderr_tail"}), flush=True)
            payload["defaults"] = choose_defaults(payload["runs"])
            (args.out / f"method_defaults-{date}.json").write_text(json.dumps(payload, indent=1))
            (args.out / f"method_defaults-{date}.md").write_text(markdown(payload))
    print(markdown(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
