"""The benchmark's Lightning step probe (bench.probe.StepProbe), added to ftlab's run through the
config as the CPU benchmark adds its own, with the synchronised step log of bench/gpu_check/hf.py:
ftlab and the HF Trainer are timed by the same clock reads, each after the GPU has finished the step."""

from __future__ import annotations

from bench.gpu_check.hf import SyncedStepLog
from bench.probe import StepProbe


class SyncedStepProbe(StepProbe):
    def __init__(self, out: str):
        super().__init__(out)
        self.steps = SyncedStepLog()
