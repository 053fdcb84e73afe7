"""`python -m bench.run` (`make bench`): ftlab against the HF Trainer and a plain PyTorch loop.

Every contender runs in a fresh process, one at a time, in the same order in every repetition
(ABCD ABCD ...), in fp32 and (the `-bf16` contenders) in bf16-mixed. Training throughput is
measured over a fixed window of optimizer steps after a few warm-up steps; in the last
--epoch-reps repetitions the epoch contenders (ftlab, the best HF Trainer, the plain loop, each in
both precisions) train a full epoch instead, which gives the full-epoch figures as well as that
repetition's window. At the end, the `peak` process measures fp32 and bf16 matmul rates at the
model's own shapes (the peaks the FLOP utilisation is read against).
Writes <out>/<date>.json (every run, medians, ratios, peaks, machine) and <out>/<date>.md. See README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

from bench import report
from bench.common import BF16, FP32, write_json

REPO = Path(__file__).resolve().parents[1]
BASES = {  # a contender is one of these, in fp32, or with "-bf16" in bf16-mixed (spec["precision"])
    "ftlab-full": "ftlab, full fine-tuning (python -m ftlab)",
    "ftlab-lora": "ftlab, LoRA r=8 (python -m ftlab)",
    "hf-pad128": "HF Trainer, studies' style: every example padded to 128",
    "hf-dynamic": "HF Trainer, dynamic padding (DataCollatorWithPadding)",
    "hf-grouped": "HF Trainer at its best: dynamic padding + group_by_length",
    "plain": "plain PyTorch loop over ftlab's batches",
}
BF16_HOW = {"ftlab": "trainer.precision=bf16-mixed", "hf": "TrainingArguments(bf16=True)",
            "plain": 'torch.autocast("cpu", bfloat16) around the forward, loss in fp32'}
CONTENDERS = {**BASES, **{f"{name}-bf16": f"{what}, bf16-mixed: {BF16_HOW[name.split('-')[0]]}"
                          for name, what in BASES.items()}}
# each fp32 / bf16 pair side by side, ftlab next to the plain loop over the same batches (a drift of
# the machine's speed during the run hits both members of a pair alike)
DEFAULT_CONTENDERS = "ftlab-full,plain,ftlab-full-bf16,plain-bf16,hf-grouped,hf-grouped-bf16,ftlab-lora,hf-pad128"
EPOCH_CONTENDERS = ("ftlab-full", "plain", "ftlab-full-bf16", "plain-bf16", "hf-grouped", "hf-grouped-bf16")
FULL = dict(reps=3, epoch_reps=3, warmup=3, steps=20, pad128_steps=8, batch_size=32, eval_batch_size=64, train_examples=None,
            eval_examples=None, epoch_steps=None, peak_n=2048, peak_reps=10, peak_min_seconds=0.05)
QUICK = dict(reps=1, epoch_reps=1, warmup=1, steps=2, pad128_steps=2, batch_size=4, eval_batch_size=8, train_examples=64,
             eval_examples=16, epoch_steps=4, peak_n=256, peak_reps=2, peak_min_seconds=0.002)


def base_of(contender: str) -> str:
    return contender.removesuffix("-bf16")


def precision_of(contender: str) -> str:
    return BF16 if contender.endswith("-bf16") else FP32


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke mode: 1 rep, 1+2 steps, batch 4, 64 train / 16 test "
                   "examples, a 4-step 'epoch', --share-process (two processes; the figures mean nothing)")
    p.add_argument("--reps", type=int, help="repetitions of the window phase (default 3)")
    p.add_argument("--warmup", type=int, help="warm-up optimizer steps before the window (default 3)")
    p.add_argument("--steps", type=int, help="optimizer steps in the timed window (default 20)")
    p.add_argument("--pad128-steps", type=int, help="hf-pad128's window (default 8): every one of its steps has "
                   "the same batch x 128 shape, so a short window measures it as well, and it is the slowest")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--train-examples", type=int, help="a fixed subset of the train split (default: all 3452)")
    p.add_argument("--eval-examples", type=int, help="a fixed subset of the test split (default: all 1120)")
    p.add_argument("--epoch-steps", type=int, help="cap the 'full epoch' phase at this many steps (default: none)")
    p.add_argument("--epoch-reps", type=int, help="the last N repetitions train the epoch contenders for a full "
                   "epoch (their window is read from the same run); default: every repetition, as one epoch run "
                   "varies by a few percent on a shared machine")
    p.add_argument("--epoch-contenders", help="contenders that train a full epoch in the last --epoch-reps repetitions "
                   f"(default: those of {','.join(EPOCH_CONTENDERS)} that run); '' for none")
    p.add_argument("--contenders", help=f"in this order, of: {','.join(CONTENDERS)} (default: {DEFAULT_CONTENDERS}, "
                   "without the -bf16 ones on a CPU that emulates bf16: there they take ~7x fp32's time and say "
                   "nothing about ftlab; name them to run them anyway)")
    p.add_argument("--once", default="hf-pad128", help="contenders run in the first repetition only (default "
                   "hf-pad128: every one of its batches has the same shape, so one run measures it, at ~60 s)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of every contender (and of the peak matmuls)")
    p.add_argument("--peak-n", type=int, help="the square reference matmul of the peaks (default 2048)")
    p.add_argument("--peak-reps", type=int, help="best of this many timings per matmul shape (default 10)")
    p.add_argument("--lr", type=float, default=5e-5, help="one learning rate for every contender (LoRA included)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--acc-tol", type=float, default=0.03, help="test accuracy gap counted as noise")
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    p.add_argument("--date", default=dt.date.today().isoformat())
    p.add_argument("--keep-work", action="store_true", help="keep run folders and logs (printed at the end)")
    p.add_argument("--share-process", action="store_true", help="run every contender of a repetition in one "
                   "process, ftlab's through ftlab.train (start-up paid once; RSS and launch figures then mean nothing; "
                   "--quick sets it); the data-cold run stays `python -m ftlab`")
    p.add_argument("--timeout", type=int, default=1500, help="seconds before one contender run is killed")
    args = p.parse_args(argv)
    args.share_process = args.share_process or args.quick
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.bf16_skipped = None
    if args.contenders is None:
        args.contenders, args.bf16_skipped = default_contenders()
    args.contenders = [c for c in args.contenders.split(",") if c]
    args.once = [c for c in args.once.split(",") if c]
    if args.epoch_contenders is None:
        args.epoch_contenders = ",".join(c for c in EPOCH_CONTENDERS if c in args.contenders)
    args.epoch_contenders = [c for c in args.epoch_contenders.split(",") if c]
    unknown = [c for c in args.contenders + args.epoch_contenders + args.once if c not in CONTENDERS]
    if unknown:
        p.error(f"unknown contender(s) {unknown}; choose from {list(CONTENDERS)}")
    if not set(args.epoch_contenders) <= set(args.contenders):
        p.error("--epoch-contenders must be among --contenders")
    if min(args.warmup, args.steps, args.pad128_steps, args.reps, args.peak_reps) < 1:
        p.error("--warmup, --steps, --pad128-steps, --reps and --peak-reps must be >= 1")
    if not 0 <= args.epoch_reps <= args.reps:
        p.error(f"--epoch-reps must be between 0 and --reps ({args.reps})")
    return args


def default_contenders() -> tuple[str, str | None]:
    """(the default contenders, why the bf16 ones were left out or None): on a CPU without AMX-BF16 or
    AVX512-BF16 (read from the CPU flags, as `trainer.precision=auto` does; the parent imports no
    torch) bf16 matrix products are emulated, and ftlab's default there is fp32."""
    from ftlab.precision import cpu_native_bf16

    if cpu_native_bf16()[0]:
        return DEFAULT_CONTENDERS, None
    kept = ",".join(c for c in DEFAULT_CONTENDERS.split(",") if not c.endswith("-bf16"))
    return kept, ("not run: a CPU without AMX-BF16 or AVX512-BF16 emulates bf16 (trainer.precision=auto "
                  "picks 32-true here); --contenders with -bf16 names runs them")


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="ftlab-bench-"))
        self.shared_cache = self.work / "cache-shared"  # warm tokenization cache of the contenders
        self.records: list[dict] = []
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                    "FTLAB_DATA_DIR": os.environ.get("FTLAB_DATA_DIR", str(REPO.parent / "shared" / "data"))}
        # ftlab's data.max_examples subsets (seeded), applied identically by the other contenders
        self.max_examples = {k: n for k, n in (("train", args.train_examples), ("test", args.eval_examples)) if n}
        if args.quick:
            self.max_examples["validation"] = args.eval_examples  # ftlab's epoch run validates: keep it short
        self.cache_entry: str | None = None

    # ---- one child process ---------------------------------------------------------------------
    def launch(self, name: str, cmd: list[str], record: dict) -> dict:
        log_path = self.work / f"{name}.log"
        launch_wall = time.time()
        started = time.perf_counter()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            timer = threading.Timer(self.args.timeout, proc.kill)
            timer.start()
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (its ru_maxrss)
            timer.cancel()
        record.update(launch_wall=launch_wall, wall_seconds=time.perf_counter() - started, log=str(log_path),
                      returncode=os.waitstatus_to_exitcode(status), child_maxrss_bytes=usage.ru_maxrss * 1024)
        if record["returncode"] != 0:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} failed (exit {record['returncode']}), log {log_path}:\n{tail}")
        return record

    def ftlab_overrides(self, run_dir: Path, peft: str, precision: str, cache: Path, phase: str,
                        epoch: bool) -> list[str]:
        """`python -m ftlab` arguments of one ftlab run (ftlab.train's with --share-process)."""
        a = self.args
        cmd = ["model=minilm", "dataset=restaurant_sup", f"peft={peft}", f"trainer.precision={precision}",
               f"seed={a.seed}", f"threads={a.threads}", f"data.batch_size={a.batch_size}",
               f"data.eval_batch_size={a.eval_batch_size}", "data.max_length=128", f"data.cache_dir={cache}",
               "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "save.model=false", f"hydra.run.dir={run_dir}"]
        cmd += [f"data.max_examples.{split}={n}" for split, n in self.max_examples.items()]
        if phase == "data-cold":  # data set-up only matters here: no training, one test batch
            return cmd + ["trainer.limit_test_batches=1", "logger=none"]
        steps = sum(self.window(f"ftlab-{peft}"))
        cmd += [f"optimizer.lr={a.lr}", "optimizer.weight_decay=0.01", "scheduler=linear", "scheduler.warmup_steps=0",
                "scheduler.warmup_ratio=0.06", "+callbacks.bench_probe._target_=bench.probe.StepProbe",
                f"+callbacks.bench_probe.out={run_dir / 'probe.json'}"]
        if not epoch:  # no validation, so no best checkpoint; last.ckpt is not written either
            cmd += [f"trainer.max_steps={steps}", "callbacks.model_checkpoint.save_last=false"]
        elif a.epoch_steps:
            cmd.append(f"trainer.limit_train_batches={max(a.epoch_steps, steps)}")
        return cmd

    @staticmethod
    def read_ftlab(record: dict) -> dict:
        """What an ftlab run left in its folder: results.json (its own timers, test metrics, params)
        and the probe's step log (the figures every contender is measured by)."""
        run_dir = Path(record["run_dir"])
        results = json.loads((run_dir / "results.json").read_text())
        record["ftlab"] = {k: results.get(k) for k in ("timing", "test", "params", "data", "precision")}
        if (run_dir / "probe.json").is_file():
            record["child"] = json.loads((run_dir / "probe.json").read_text())
        return record

    def spec(self, name: str, contender: str, epoch: bool = False, **extra) -> dict:
        a, kind = self.args, base_of(contender)
        return {"kind": kind, "precision": precision_of(contender), "out": str(self.work / f"{name}.out.json"),
                "threads": a.threads, "seed": a.seed, "batch_size": a.batch_size, "eval_batch_size": a.eval_batch_size,
                "lr": a.lr, "weight_decay": 0.01, "warmup_ratio": 0.06, "max_length": 128,
                "max_examples": self.max_examples,
                "max_steps": (a.epoch_steps and max(a.epoch_steps, sum(self.window(kind)))) if epoch
                else sum(self.window(kind)),
                "data_dir": self.env["FTLAB_DATA_DIR"], "cache_entry": self.cache_entry, **extra}

    def item(self, contender: str, rep: int, epoch: bool) -> tuple[str, dict, dict]:
        """(contender, the spec of its run, its record). ftlab's spec holds the command's overrides."""
        name = f"{'epoch' if epoch else 'window'}-r{rep}-{contender}"
        record = {"phase": "train", "rep": rep, "epoch": epoch, "window": self.window(contender),
                  "precision": precision_of(contender)}
        if contender.startswith("ftlab-"):
            run_dir = self.work / name
            overrides = self.ftlab_overrides(run_dir, base_of(contender).removeprefix("ftlab-"),
                                             precision_of(contender), self.shared_cache, "train", epoch)
            record["run_dir"] = str(run_dir)
            return contender, {"kind": "ftlab", "out": str(self.work / f"{name}.out.json"), "overrides": overrides}, record
        return contender, self.spec(name, contender, epoch), record

    def execute(self, name: str, items: list[tuple[str, dict, dict]]) -> None:
        """Run items, each a (contender, spec, record): a lone ftlab item as `python -m ftlab` (the
        real entry point), anything else in one `python -m bench.contenders` process (one item each,
        except with --share-process). Records the runs."""
        print(f"[bench {time.strftime('%H:%M:%S')}] {name}", flush=True)
        if len(items) == 1 and items[0][1]["kind"] == "ftlab":
            contender, spec, record = items[0]
            self.launch(name, [sys.executable, "-m", "ftlab", *spec["overrides"]], record)
            record["contender"] = contender
            self.records.append(self.read_ftlab(record))
            return
        paths = []
        for _, spec, _ in items:
            paths.append(self.work / f"{Path(spec['out']).stem}.spec.json")
            write_json(paths[-1], spec)
        launched = self.launch(name, [sys.executable, "-m", "bench.contenders", *map(str, paths)], {})
        for contender, spec, record in items:
            record.update(launched, contender=contender, shared_process=len(items) > 1,
                          child=json.loads(Path(spec["out"]).read_text()))
            self.records.append(self.read_ftlab(record) if spec["kind"] == "ftlab" else record)

    def window(self, contender: str) -> list[int]:
        """[warm-up steps, timed steps] of a contender's run."""
        return [self.args.warmup, self.args.pad128_steps if base_of(contender) == "hf-pad128" else self.args.steps]

    # ---- the schedule ----------------------------------------------------------------------------
    def data_cold(self, rep: int) -> None:
        """ftlab's real entry point on an empty tokenization cache. Rep 0 fills the contenders' shared
        cache (so it is warm for every contender run); later reps use a fresh folder each."""
        cache = self.shared_cache if rep == 0 else self.work / f"cache-cold-{rep}"
        name = f"data-cold-r{rep}"
        print(f"[bench {time.strftime('%H:%M:%S')}] {name}", flush=True)
        run_dir = self.work / name
        record = self.launch(name, [sys.executable, "-m", "ftlab", *self.ftlab_overrides(
            run_dir, "zeroshot", FP32, cache, "data-cold", False)], {"phase": "data-cold", "rep": rep, "epoch": False,
                                                                     "run_dir": str(run_dir)})
        record["contender"] = "ftlab-data-cold"
        self.records.append(self.read_ftlab(record))
        if self.cache_entry is None:
            key = record["ftlab"]["data"]["cache_key"]
            self.cache_entry = str(next((cache / "tokenized").glob(f"*-{key}")))
        if rep > 0:
            shutil.rmtree(cache, ignore_errors=True)

    def peak_item(self) -> tuple[str, dict, dict]:
        """The matmul peaks, at T = the padded tokens of ftlab's full fine-tuning batches (its step logs,
        read when the peak runs: after every ftlab run of the benchmark, in the last process)."""
        a = self.args
        logs = [str(self.work / f"{phase}-r{rep}-{name}" / "probe.json") for rep in range(a.reps)
                for phase in ("window", "epoch") for name in ("ftlab-full", "ftlab-full-bf16")]  # the same batches
        spec = self.spec("peak", "peak", n=a.peak_n, reps=a.peak_reps, min_seconds=a.peak_min_seconds, tokens_from=logs)
        return "peak", spec, {"phase": "peak", "rep": 0, "epoch": False}

    def run(self) -> dict:
        a, started = self.args, time.perf_counter()
        loadavg_start = os.getloadavg()
        for rep in range(a.reps):
            self.data_cold(rep)
            shared = []
            for contender in a.contenders:
                if rep > 0 and contender in a.once:
                    continue
                epoch = rep >= a.reps - a.epoch_reps and contender in a.epoch_contenders
                item = self.item(contender, rep, epoch)
                if a.share_process:
                    shared.append(item)
                else:
                    self.execute(f"{'epoch' if epoch else 'window'}-r{rep}-{contender}", [item])
            if a.share_process and rep == a.reps - 1:
                shared.append(self.peak_item())
            if shared:
                self.execute(f"shared-r{rep}", shared)
        if not a.share_process:
            self.execute("peak", [self.peak_item()])
        duration = time.perf_counter() - started
        meta = machine_info()
        meta.update(loadavg_start=loadavg_start, loadavg_end=os.getloadavg(), duration_seconds=duration,
                    date=a.date, command=" ".join([Path(sys.executable).name, "-m", "bench.run", *sys.argv[1:]]))
        config = {k: v for k, v in vars(a).items() if k not in ("out", "keep_work", "timeout")}
        config.update(max_examples=self.max_examples, max_length=128, weight_decay=0.01, warmup_ratio=0.06,
                      descriptions={c: CONTENDERS[c] for c in dict.fromkeys(a.contenders + a.epoch_contenders)},
                      precisions={c: precision_of(c) for c in a.contenders}, ftlab_conf_precision=conf_precision())
        return report.summarize(self.records, config, meta)


def conf_precision(method: str = "full") -> str | None:
    """trainer.precision that ftlab's shipped config gives `method`: its recommendation in
    conf/peft/<method>.yaml, else base.yaml's. Read as YAML, not composed: the parent imports no torch,
    and so no ftlab config (its resolvers) either. A preset or the command line can still change it."""
    import yaml

    conf = REPO / "ftlab" / "conf"
    for path in (conf / "peft" / f"{method}.yaml", conf / "base.yaml"):
        try:
            node = (yaml.safe_load(path.read_text()) or {}).get("trainer") or {}
        except (OSError, yaml.YAMLError):
            continue
        if node.get("precision") is not None:
            return str(node["precision"])
    return None


def machine_info() -> dict:
    cpu = None
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), None)
    except OSError:
        pass
    versions = {}
    for name in ("torch", "transformers", "lightning", "peft", "datasets", "accelerate", "tokenizers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()

    def git(*cmd: str) -> str:
        out = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or None
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"cpu_model": cpu, "logical_cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "platform": platform.platform(), "versions": versions, "git_commit": commit, "git_dirty": dirty}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        if not args.keep_work:
            shutil.rmtree(bench.work, ignore_errors=True)
    out = Path(args.out)
    json_path, md_path = out / f"{args.date}.json", out / f"{args.date}.md"
    write_json(json_path, results)
    md_path.write_text(report.markdown(results))
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}" + (f"; run folders in {bench.work}" if args.keep_work else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
