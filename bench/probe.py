"""A Lightning callback the benchmark adds to ftlab's own run through a config override
(`+callbacks.bench_probe._target_=bench.probe.StepProbe`), so that ftlab runs unmodified from its
real entry point while its steps are timed exactly as the other contenders' are. It only reads
clocks and batch shapes; ftlab's own timers (results.json) are reported next to it."""

from __future__ import annotations

import time

import lightning as L

from bench.common import StepLog, peak_rss_bytes, write_json


class StepProbe(L.Callback):
    def __init__(self, out: str):
        self.out = out
        self.steps = StepLog()
        self._test_start = 0.0

    def setup(self, trainer, pl_module, stage):
        if stage == "fit":  # start of trainer.fit, before loaders and optimizer exist (ftlab's timer: on_fit_start)
            self.steps.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.step(batch)  # after the optimizer step (automatic optimization)

    def on_test_start(self, trainer, pl_module):
        self._test_start = time.perf_counter()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.steps.eval_samples += len(batch["labels"])

    def on_test_end(self, trainer, pl_module):
        self.steps.eval_seconds = time.perf_counter() - self._test_start
        self._write()

    def teardown(self, trainer, pl_module, stage):
        self._write()

    def _write(self) -> None:
        if self.steps.train_start is not None:
            write_json(self.out, {**self.steps.to_dict(), "peak_rss_bytes": peak_rss_bytes()})
