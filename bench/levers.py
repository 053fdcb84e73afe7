"""`python -m bench.levers`: what one CPU lever buys, measured on its own, on and off over identical batches.

bench/README.md's profile names the levers; this measures each by running ftlab's own training
(`python -m ftlab`, MiniLM full fine-tuning on restaurant_sup, batch 32, the benchmark's probe timing
every step) with the lever on and with it off, in alternating processes (on/off, then off/on, ...:
drift of the machine falls on both), at each precision. Same seed, same batches in the same order:
per repetition the median of the per-step time ratios (on / off) over the steps after the warmup,
and the ratio of their sums. Below 1: the lever makes a step faster.

A lever is the config overrides that turn it off (the switch users have). To try a new one, add its
switch and a line to LEVERS. Writes bench/results/levers-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.pairs import step_durations

REPO = Path(__file__).resolve().parents[1]

# name: (what it is, the overrides that turn it off)
LEVERS = {
    "bulk_dropout": ("cpu.bulk_dropout: the dropout modules' keep-masks drawn 64 bits at a time (ftlab/cpu.py)",
                     ["cpu.bulk_dropout=false"]),
    "keep_freed_memory": ("cpu.keep_freed_memory: glibc keeps freed memory for the next step (ftlab/cpu.py)",
                          ["cpu.keep_freed_memory=false"]),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.levers", description=__doc__.split("\n")[0])
    p.add_argument("--levers", nargs="+", default=sorted(LEVERS), choices=sorted(LEVERS))
    p.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    p.add_argument("--reps", type=int, default=3, help="on/off pairs per lever and precision (default 3)")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the ratios (default 5)")
    p.add_argument("--steps", type=int, default=40, help="timed steps after the warmup (default 40)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peft", default="full")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    return p.parse_args(argv)


def overrides(args, lever: str, state: str, precision: str, run_dir: Path, cache: Path) -> list[str]:
    off = LEVERS[lever][1] if state == "off" else []
    return ["model=minilm", "dataset=restaurant_sup", f"peft={args.peft}", f"trainer.precision={precision}",
            "seed=42", f"threads={args.threads}", "data.batch_size=32", f"data.cache_dir={cache}",
            f"trainer.max_steps={args.warmup + args.steps}", "callbacks.model_checkpoint.save_last=false",
            "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false", "logger=none", "save.model=false",
            "+callbacks.bench_probe._target_=bench.probe.StepProbe", f"+callbacks.bench_probe.out={run_dir / 'probe.json'}",
            f"hydra.run.dir={run_dir}", *off]


def run_one(args, lever: str, state: str, precision: str, run_dir: Path, cache: Path) -> dict:
    argv = overrides(args, lever, state, precision, run_dir, cache)
    proc = subprocess.run([sys.executable, "-m", "ftlab", *argv], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{lever} {state} {precision} failed:\n{proc.stderr[-3000:]}")
    log = (run_dir / "ftlab.log").read_text()
    return {**json.loads((run_dir / "probe.json").read_text()),  # and what ftlab said it turned on
            "cpu_log": [line.split(" - ", 1)[-1] for line in log.splitlines() if "[ftlab.cpu]" in line]}


def compare(on: dict, off: dict, warmup: int) -> dict:
    """on / off over the same batches: the median per-step ratio and the ratio of the sums, steps after warmup."""
    assert on["batches"] == off["batches"], "the two runs trained on different batches"
    a, b = step_durations(on)[warmup:], step_durations(off)[warmup:]
    return {"step_median": statistics.median(x / y for x, y in zip(a, b)), "total": sum(a) / sum(b),
            "cpu_log_on": on["cpu_log"], "cpu_log_off": off["cpu_log"],
            "ms_per_step_on": 1e3 * statistics.median(a), "ms_per_step_off": 1e3 * statistics.median(b)}


def measure(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ftlab-levers-") as tmp:
        cache = Path(tmp) / "cache"
        for lever in args.levers:
            for precision in args.precisions:
                reps = []
                for rep in range(args.reps):
                    order = ("on", "off") if rep % 2 == 0 else ("off", "on")
                    logs = {s: run_one(args, lever, s, precision, Path(tmp) / f"{lever}-{precision}-{rep}-{s}", cache)
                            for s in order}
                    reps.append(compare(logs["on"], logs["off"], args.warmup))
                    print(f"{lever} {precision} rep {rep}: on/off per step {reps[-1]['step_median']:.3f}, "
                          f"sums {reps[-1]['total']:.3f}", flush=True)
                rows.append({"lever": lever, "precision": precision, "reps": reps,
                             "step_median": statistics.median(r["step_median"] for r in reps),
                             "total": statistics.median(r["total"] for r in reps)})
    return rows


def markdown(record: dict) -> str:
    a = record["args"]
    lines = [f"# CPU levers, on vs off, {record['date']}", "",
             f"MiniLM-L6 peft={a['peft']} on restaurant_sup, batch 32, {a['threads']} threads, seed 42 (identical "
             f"batches on and off), steps {a['warmup'] + 1}..{a['warmup'] + a['steps']} timed, {a['reps']} alternating "
             f"on/off process pairs; {record['machine']}. Ratios on / off (below 1: the lever is faster), medians over "
             "the pairs; each pair's figures in brackets.", "",
             "| lever | precision | median per-step ratio | sum ratio | ms/step on | ms/step off |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in record["rows"]:
        each = lambda k: ", ".join(f"{x[k]:.3f}" for x in r["reps"])  # noqa: E731
        ms = lambda k: statistics.median(x[k] for x in r["reps"])  # noqa: E731
        lines.append(f"| {r['lever']} | {r['precision']} | {r['step_median']:.3f} [{each('step_median')}] | "
                     f"{r['total']:.3f} [{each('total')}] | {ms('ms_per_step_on'):.0f} | {ms('ms_per_step_off'):.0f} |")
    lines += ["", "Levers:", ""] + [f"- `{n}`: {LEVERS[n][0]}" for n in a["levers"]]
    lines += ["", "Command:", "", "    python -m bench.levers " + " ".join(record["argv"])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    from ftlab.precision import cpu_native_bf16

    native, device = cpu_native_bf16()
    record = {"date": dt.date.today().isoformat(), "argv": sys.argv[1:] if argv is None else list(argv),
              "machine": device + ("" if native else " (bf16 not native)"), "rows": measure(args),
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"levers-{record['date']}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(record))
    print(markdown(record), f"wrote {stem}.json and .md", sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
