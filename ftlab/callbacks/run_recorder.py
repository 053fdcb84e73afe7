"""The run's record for results.json: time split by phase, throughput, the learning curves."""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn

from ftlab.rss import peak_rss_bytes


def _scalar(value) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)


class RunRecorder(L.Callback):
    """Train time excludes validation; samples/s counts real examples; history has one row per
    evaluation (epoch, step, val/ metrics), the epoch's train/ metrics joined to the row of the
    evaluation that ends it (or a row of their own when no evaluation does). Its state travels in
    checkpoints, so a resumed run reports the whole run: the rows and the time before the stop
    included, each evaluation once."""

    def __init__(self):
        self.train_seconds = 0.0
        self.train_samples = 0
        self.eval_seconds = {"validate": 0.0, "test": 0.0}
        self.eval_samples = {"validate": 0, "test": 0}
        self.first_step_seconds: float | None = None
        self.history: list[dict] = []
        self._fit_start = 0.0
        self._epoch_start = 0.0
        self._epoch_val_seconds = 0.0
        self._eval_start = 0.0
        self._in_epoch = False
        self._fitting = False

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._fitting = stage == "fit"

    def state_dict(self) -> dict:
        train_seconds = self.train_seconds
        if self._in_epoch:  # a checkpoint mid-epoch: the epoch's training time so far
            train_seconds += time.perf_counter() - self._epoch_start - self._epoch_val_seconds
        return {"train_seconds": train_seconds, "train_samples": self.train_samples,
                "eval_seconds": dict(self.eval_seconds), "eval_samples": dict(self.eval_samples),
                "first_step_seconds": self.first_step_seconds, "history": [dict(r) for r in self.history]}

    def load_state_dict(self, state: dict) -> None:
        if not self._fitting:  # testing the best checkpoint restores callbacks too: keep the whole run's record
            return
        self.train_seconds, self.train_samples = state["train_seconds"], state["train_samples"]
        self.eval_seconds, self.eval_samples = dict(state["eval_seconds"]), dict(state["eval_samples"])
        self.first_step_seconds = state["first_step_seconds"]
        self.history = [dict(r) for r in state["history"]]

    # training time: epoch wall time minus the validation that runs inside the epoch
    def on_fit_start(self, trainer, pl_module):
        self._fit_start = time.perf_counter()

    def on_train_start(self, trainer, pl_module):
        """A run resumed mid-epoch gets no on_train_epoch_start: its epoch clock starts here."""
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start = time.perf_counter()
        self._epoch_val_seconds = 0.0
        self._in_epoch = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.train_samples += len(batch["labels"]) * trainer.world_size  # every process trains an equal share
        if self.first_step_seconds is None:
            self.first_step_seconds = time.perf_counter() - self._fit_start

    def on_train_epoch_end(self, trainer, pl_module):
        self.train_seconds += time.perf_counter() - self._epoch_start - self._epoch_val_seconds
        self._in_epoch = False
        row = self._row(trainer, "train/")
        last = self.history[-1] if self.history else None
        if last and (last["epoch"], last["step"]) == (row["epoch"], row["step"]):
            last.update(row)  # the validation at this epoch's end: one row for both
        else:
            self.history.append(row)

    @staticmethod
    def _row(trainer, prefix: str) -> dict:
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in trainer.callback_metrics.items():
            if key.startswith(prefix) and not key.endswith("_step"):
                row[key.removesuffix("_epoch")] = _scalar(value)
        return row

    # evaluation time and samples, sanity checking excluded
    def on_validation_start(self, trainer, pl_module):
        self._eval_start = time.perf_counter()

    on_test_start = on_validation_start

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.eval_samples["validate"] += len(batch["labels"]) * trainer.world_size

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.eval_samples["test"] += len(batch["labels"]) * trainer.world_size

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        seconds = time.perf_counter() - self._eval_start
        self.eval_seconds["validate"] += seconds
        if trainer.state.fn == TrainerFn.FITTING:
            self._epoch_val_seconds += seconds
            self.history.append(self._row(trainer, "val/"))  # one row per evaluation (per epoch or every N steps)

    def on_test_end(self, trainer, pl_module):
        self.eval_seconds["test"] += time.perf_counter() - self._eval_start

    def summary(self) -> dict:
        def rate(n, s):
            return round(n / s, 3) if s > 0 else None

        eval_s = sum(self.eval_seconds.values())
        return {
            "train_seconds": round(self.train_seconds, 3),
            "train_samples": self.train_samples,
            "train_samples_per_s": rate(self.train_samples, self.train_seconds),
            "eval_seconds": round(eval_s, 3),
            "eval_samples_per_s": rate(sum(self.eval_samples.values()), eval_s),
            "time_to_first_step_s": round(self.first_step_seconds, 3) if self.first_step_seconds else None,
            "peak_rss_bytes": peak_rss_bytes(),
        }
