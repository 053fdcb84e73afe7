"""What a resumed run needs to continue exactly and Lightning does not restore, added to every checkpoint."""

from __future__ import annotations

import logging
import random

import lightning as L
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn

log = logging.getLogger(__name__)


class ResumeState(L.Callback):
    """Adds to every checkpoint what a resumed run needs to continue exactly and Lightning does not
    restore: the RNG states (python, numpy, torch, CUDA); the running sums behind the epoch means of
    the training metrics (Lightning restarts them at zero, so a run resumed mid-epoch would average
    its epoch's `train/loss` over the resumed batches only); the train loader's position (Lightning
    saves it but, when `configure_optimizers` asks for `estimated_stepping_batches` as our schedulers
    do, sets the loader up before it loads the loops and never hands it the state). Also flushes the
    loggers at each save, and once more at the next batch, so that the logs on disk reach the checkpoint."""

    def __init__(self):
        self._trainer = None
        self._rng: dict | None = None
        self._sums: dict | None = None
        self._loader: dict | None = None
        self._flush_pending = False
        self._fitting = False

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._trainer = trainer
        self._fitting = stage == "fit"

    # ---- saving ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"rng": _collect_rng()}
        trainer = self._trainer
        if trainer is not None and trainer.state.fn == TrainerFn.FITTING:
            state.update(epoch=trainer.current_epoch, epoch_sums=_epoch_sums(trainer))
            loader = trainer.train_dataloader
            if hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict"):
                state["loader"] = loader.state_dict()
        return state

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._flush(trainer)
        self._flush_pending = True  # the step's own log row comes right after this save

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._flush_if_pending(trainer)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._flush_if_pending(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._flush_if_pending(trainer)

    def _flush_if_pending(self, trainer) -> None:
        if self._flush_pending:
            self._flush_pending = False
            self._flush(trainer)

    @staticmethod
    def _flush(trainer) -> None:
        for logger in trainer.loggers:
            logger.save()

    # ---- resuming ----------------------------------------------------------------------------
    def load_state_dict(self, state: dict) -> None:
        if not self._fitting:  # trainer.test(ckpt_path=...) restores callbacks too
            return
        self._rng = state.get("rng")
        self._loader = state.get("loader")
        self._sums = {"epoch": state["epoch"], "sums": state["epoch_sums"]} if state.get("epoch_sums") else None

    def on_train_start(self, trainer, pl_module) -> None:
        """The last moment before the first resumed step: what the resumed process drew from the RNGs
        while it rebuilt the run (fresh weights, data) must not shift the dropout masks."""
        if self._rng is not None:
            _set_rng(self._rng)
            self._rng = None
        if self._loader is not None:  # the loader starts its pass lazily, at the first batch: still in time
            trainer.train_dataloader.load_state_dict(self._loader)
            self._loader = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """After the first resumed step has logged: fold in the sums of the batches the earlier
        process trained on. One addition (a + b == b + a exactly), so the epoch means are the
        uninterrupted run's to the bit."""
        saved, self._sums = self._sums, None
        if not saved or saved["epoch"] != trainer.current_epoch:
            return
        results = getattr(trainer.fit_loop.epoch_loop, "_results", {})
        for key, (value, count) in saved["sums"].items():
            metric = results.get(key)
            if metric is None:
                log.warning("resumed run: %s was not logged again; its epoch value covers the resumed batches only",
                            key)
                continue
            value = value.to(metric.value.device)
            if metric.meta.is_mean_reduction or metric.meta.is_sum_reduction:
                metric.value = metric.value + value
            else:
                metric.value = metric.meta.reduce_fx(metric.value, value)
            if count is not None:
                metric.cumulated_batch_size = metric.cumulated_batch_size + count.to(metric.cumulated_batch_size.device)


def _epoch_sums(trainer) -> dict:
    """Running epoch aggregates of the training metrics (Lightning's private `_ResultMetric`s; a
    Lightning that lays them out otherwise leaves this empty, and only the logged epoch means of a
    resumed epoch suffer)."""
    sums = {}
    for key, metric in getattr(trainer.fit_loop.epoch_loop, "_results", {}).items():
        meta = getattr(metric, "meta", None)
        if meta is None or not getattr(metric, "is_tensor", False) or not meta.on_epoch:
            continue
        if not (meta.is_mean_reduction or meta.is_sum_reduction or meta.is_max_reduction or meta.is_min_reduction):
            continue
        count = metric.cumulated_batch_size.detach().cpu().clone() if meta.is_mean_reduction else None
        sums[key] = (metric.value.detach().cpu().clone(), count)
    return sums


def _collect_rng() -> dict:
    """Plain types and tensors only: checkpoints load with torch.load(weights_only=True)."""
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(state), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng(states: dict) -> None:
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
