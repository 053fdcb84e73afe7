"""Fault injection the tests control: callbacks named in the config (`+callbacks.fault._target_=
support.faults.SendSignal`) that stop or starve a run at an exact point of training, rather than
after a guessed time. Each fires once per run folder (a marker file), so the resumed run, which
has the same callbacks in its saved config, goes on undisturbed."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn


class _Once(L.Callback):
    def __init__(self, dirpath: str, step: int):
        self.marker, self.step = Path(dirpath) / "fault.fired", step

    def _due(self, trainer) -> bool:
        if trainer.global_step != self.step or self.marker.exists():
            return False
        self.marker.touch()
        return True


class SendSignal(_Once):
    """`at`: "step" (after optimizer step `step`, mid-epoch), "validation" (inside the validation
    that follows step `step`), "checkpoint" (while the first checkpoint at step `step` is written)."""

    def __init__(self, dirpath: str, name: str = "SIGTERM", at: str = "step", step: int = 3):
        super().__init__(dirpath, step)
        self.signum, self.at = getattr(signal, name), at

    def _fire(self, trainer) -> None:
        if self._due(trainer):
            os.kill(os.getpid(), self.signum)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.at == "step":
            self._fire(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.at == "validation" and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._fire(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self.at == "checkpoint":
            self._fire(trainer)


class FillDisk(_Once):
    """After optimizer step `step`, fill the run folder's file system (a small tmpfs in the tests)
    with `<run dir>/filler`, so that the next checkpoint finds no room."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._due(trainer):
            free = shutil.disk_usage(self.marker.parent).free
            with open(self.marker.parent / "filler", "wb") as f:
                f.write(b"\0" * max(free - 4096, 0))
