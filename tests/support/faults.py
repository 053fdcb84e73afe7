"""Fault injection the tests control: a callback that sends this process a signal at a chosen
point of training, named in the config (`+callbacks.fault._target_=support.faults.SendSignal`), so
the fault matrix stops runs at exact steps rather than after a guessed time."""

from __future__ import annotations

import os
import signal

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn


class SendSignal(L.Callback):
    """`at`: "step" (after optimizer step `step`, mid-epoch), "validation" (inside the validation
    that follows step `step`), "checkpoint" (while the checkpoint at step `step` is being written).
    Fires once per process; a resumed process past `step` never fires."""

    def __init__(self, name: str = "SIGTERM", at: str = "step", step: int = 3):
        self.signum, self.at, self.step = getattr(signal, name), at, step
        self.fired = False

    def _fire(self, trainer) -> None:
        if not self.fired and trainer.global_step == self.step:
            self.fired = True
            os.kill(os.getpid(), self.signum)

    def on_train_start(self, trainer, pl_module) -> None:
        self.fired = trainer.global_step >= self.step  # a resumed run does not stop again

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.at == "step":
            self._fire(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.at == "validation" and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._fire(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self.at == "checkpoint":
            self._fire(trainer)
