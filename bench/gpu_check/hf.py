"""The benchmark's HF Trainer contender (bench.contenders.run_hf) on a CUDA GPU and on the random
model the GPU check saves: `python -m bench.gpu_check.hf SPEC.json`, or `run_spec` in the dry run's
shared process.

run_hf is written for the CPU benchmark: it loads MiniLM from its package (`model_path()`) and asks
for `TrainingArguments(use_cpu=True)`. Rather than a second copy of it, three of its names are
replaced here, in this process only: `model_path` (the saved random model, SPEC["model_dir"]),
`StepLog` (SyncedStepLog below) and `transformers.TrainingArguments` (a subclass whose `use_cpu` is
False where CUDA is available, so that the Trainer takes the GPU; the dry run goes through the same
subclass, where it stays True, which bf16 without a GPU needs). Everything else (data, tokenization,
collator, sampler, optimizer, schedule, step log, precision watch) is the benchmark's own. SPEC is
bench.run.Bench.spec's plus "model_dir" and "device" ("cuda" or "cpu": what the plan expects); the
result JSON (SPEC["out"]) is bench.contenders.main's plus `cuda_max_allocated_bytes` (the whole
process: model load, training, evaluation)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.common import StepLog, write_json


class SyncedStepLog(StepLog):
    """bench.common.StepLog whose step end first waits for the GPU. CUDA kernels run behind the
    Python loop, so a clock read at the end of a step measures when its work was queued, not done;
    synchronising each step (both contenders alike) makes every step's end a real one. A no-op where
    CUDA is not in use (the dry run), so the CPU figures are the plain benchmark's."""

    def step(self, batch=None) -> None:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        super().step(batch)


def _patch(spec: dict) -> None:
    import torch
    import transformers

    import bench.contenders as contenders

    contenders.model_path = lambda: spec["model_dir"]
    contenders.StepLog = SyncedStepLog
    if not getattr(transformers.TrainingArguments, "_gpu_check", False):
        class CudaWhereAvailable(transformers.TrainingArguments):
            _gpu_check = True

            def __init__(self, *args, **kwargs):
                kwargs["use_cpu"] = not torch.cuda.is_available()
                super().__init__(*args, **kwargs)

        transformers.TrainingArguments = CudaWhereAvailable  # run_hf imports it at call time


def run_spec(spec_path: str) -> None:
    """One HF Trainer run, as `python -m bench.contenders SPEC` makes it, on the GPU where there is one."""
    import torch

    import bench.contenders as contenders

    spec = json.loads(Path(spec_path).read_text())
    _patch(spec)
    cuda = spec["device"] == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    contenders.main([spec_path])
    result = json.loads(Path(spec["out"]).read_text())
    result["device"] = spec["device"]
    result["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated() if cuda else None
    write_json(spec["out"], result)


if __name__ == "__main__":
    run_spec(sys.argv[1])
