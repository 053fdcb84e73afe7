"""`python -m bench.profile_step`: where a training step of ftlab's own run spends its time.

ftlab runs as `ftlab.train(...)` runs it (the command's own code: its config, model, batches,
Lightning loop, callbacks and CPU levers), MiniLM full fine-tuning on restaurant_sup in
bf16-mixed by default, with one extra callback (`StepProfiler`, added through the config as the
benchmark adds its probe) that runs torch.profiler over the steps `warmup+1 .. warmup+steps`: from
the end of step `warmup` to the end of step `warmup+steps`, the benchmark's window, so batch
fetching, forward, backward, clipping, the optimizer and the loop's own work are all inside. The
run stops after the window (trainer.max_steps), tests one batch, saves nothing.

Writes <out>/profile-<date>.md (the top ops by self CPU time, their share of the profiled steps'
wall time, and how much of it the matrix products take) and <out>/profile-<date>.json (every op).
Self CPU time is an op's own time on the calling thread, intra-op threads included in it (a
matmul's threads run inside the call); the profiler's own cost makes profiled steps a few percent
slower than unprofiled ones, so read shares, not absolute times.

    python -m bench.profile_step                 # 3 warm-up + 10 profiled steps, bf16-mixed, 2 threads
    python -m bench.profile_step --steps 2 --warmup 1 --out /tmp/profile   # a smoke run
    python -m bench.profile_step --precision 32-true
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

REPO = Path(__file__).resolve().parents[1]
TOP = 10
# leaf ops that are matrix products (their self time is the product itself); SDPA's attention kernel too
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_scaled_dot_product_flash_attention_for_cpu",
              "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


class StepProfiler(L.Callback):
    """torch.profiler from the end of step `warmup` to the end of step `warmup + steps`; writes
    the ops' averages and the window's wall time to `out` (JSON)."""

    def __init__(self, out: str, warmup: int, steps: int):
        self.out, self.warmup, self.steps = out, int(warmup), int(steps)
        self._prof = None
        self._started = 0.0

    def _start(self) -> None:
        import torch

        self._prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        self._prof.__enter__()
        self._started = time.perf_counter()

    def on_train_start(self, trainer, pl_module):
        if self.warmup == 0:
            self._start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step  # optimizer steps done (this one included)
        if step == self.warmup and self._prof is None:
            self._start()
        elif step == self.warmup + self.steps and self._prof is not None:
            seconds = time.perf_counter() - self._started
            self._prof.__exit__(None, None, None)
            ops = [{"op": e.key, "count": e.count, "self_cpu_us": e.self_cpu_time_total, "cpu_us": e.cpu_time_total}
                   for e in self._prof.key_averages()]
            ops.sort(key=lambda o: -o["self_cpu_us"])
            Path(self.out).write_text(json.dumps({"seconds": seconds, "steps": self.steps, "warmup": self.warmup,
                                                  "batch_padded_tokens": int(batch["attention_mask"].numel()),
                                                  "precision": str(trainer.precision), "ops": ops}))
            self._prof = None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.profile_step", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=10, help="profiled optimizer steps (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="unprofiled steps before them (default 3)")
    p.add_argument("--precision", default="bf16-mixed", help="trainer.precision (default bf16-mixed)")
    p.add_argument("--peft", default="full")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--top", type=int, default=TOP)
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    p.add_argument("--date", default=dt.date.today().isoformat())
    p.add_argument("overrides", nargs="*", help="more ftlab overrides (e.g. data.cache_dir=...)")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    return args


def markdown(prof: dict, args: argparse.Namespace, command: list[str], top: int) -> str:
    wall_us = prof["seconds"] * 1e6
    ops = prof["ops"]
    total_self = sum(o["self_cpu_us"] for o in ops)
    matmul = sum(o["self_cpu_us"] for o in ops if o["op"] in MATMUL_OPS)
    per_step = prof["seconds"] / prof["steps"]
    lines = [f"# Profile of ftlab training steps, {args.date}", "",
             f"MiniLM-L6 on restaurant_sup, peft={args.peft}, trainer.precision={prof['precision']}, batch "
             f"{args.batch_size} (last profiled batch: {prof['batch_padded_tokens']} padded tokens), "
             f"{args.threads} threads; steps {prof['warmup'] + 1}..{prof['warmup'] + prof['steps']} profiled: "
             f"{prof['seconds']:.3f} s wall, {1000 * per_step:.0f} ms/step (with the profiler's overhead).", "",
             f"Self CPU time of all ops: {total_self / wall_us:.1%} of the wall time (the rest: Python, the "
             f"loop, the profiler); matrix products ({', '.join(MATMUL_OPS[:4])}, SDPA): {matmul / wall_us:.1%}.", "",
             "| # | op | calls/step | self CPU ms/step | share of step time |", "|---|---|---|---|---|"]
    for i, o in enumerate(ops[:top], 1):
        lines.append(f"| {i} | `{o['op']}` | {o['count'] / prof['steps']:.0f} | "
                     f"{o['self_cpu_us'] / 1000 / prof['steps']:.1f} | {o['self_cpu_us'] / wall_us:.1%} |")
    rest = sum(o["self_cpu_us"] for o in ops[top:])
    lines.append(f"| | {len(ops) - top} other ops | | {rest / 1000 / prof['steps']:.1f} | {rest / wall_us:.1%} |")
    lines += ["", "Command (in-process, `ftlab.train`):", "", "    ftlab " + " ".join(command), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import ftlab

    work = Path(tempfile.mkdtemp(prefix="ftlab-profile-"))
    raw = work / "profile.json"
    command = ["model=minilm", "dataset=restaurant_sup", f"peft={args.peft}", f"trainer.precision={args.precision}",
               f"seed={args.seed}", f"threads={args.threads}", f"data.batch_size={args.batch_size}",
               f"trainer.max_steps={args.warmup + args.steps}", "callbacks.model_checkpoint.save_last=false",
               "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false", "logger=none", "save.model=false",
               f"hydra.run.dir={work / 'run'}", "+callbacks.step_profiler._target_=bench.profile_step.StepProfiler",
               f"+callbacks.step_profiler.out={raw}", f"+callbacks.step_profiler.warmup={args.warmup}",
               f"+callbacks.step_profiler.steps={args.steps}", *args.overrides]
    try:
        ftlab.train(*command)
        prof = json.loads(raw.read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(prof, args, [c for c in command if "step_profiler" not in c and "hydra.run.dir" not in c], args.top)
    (out / f"profile-{args.date}.md").write_text(text)
    (out / f"profile-{args.date}.json").write_text(json.dumps({"args": vars(args), **prof}, indent=1) + "\n")
    print(text)
    print(f"wrote {out / f'profile-{args.date}.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
