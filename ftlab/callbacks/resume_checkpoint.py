"""`checkpoints/resume.ckpt`: what `ftlab resume=<run dir>` and a requeued SLURM job continue from.

Lightning's checkpoints already hold the trained weights (adapter-only for PEFT methods, see
ClassifierModule.on_save_checkpoint), the optimizer, the scheduler, the loop counters and the state
of the train loader; `ResumeState` (resume_state.py) adds what Lightning leaves out.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.trainer.states import TrainerFn

from ftlab.errors import InvalidValue

RESUME_FILE = "resume.ckpt"


class ResumeCheckpoint(Checkpoint):
    """`checkpoints/resume.ckpt`, overwritten every `every_n_steps` optimizer steps and at each epoch
    end (after its validation); null: never, for no extra checkpoint I/O (a full fine-tune writes the
    weights and the optimizer's moments each time), and a killed run resumes from `last.ckpt`, which
    Lightning writes only with each new best. A step after which Lightning validates saves after the
    validation: a run restarted from just before it would skip it (Lightning counts it as done).
    Lightning writes each file atomically (temporary file, then rename): a kill never leaves half a
    checkpoint."""

    def __init__(self, dirpath: str, every_n_steps: int | None = None):
        if every_n_steps is not None and (isinstance(every_n_steps, bool) or every_n_steps < 1):
            raise InvalidValue("checkpoint_every_n_steps", every_n_steps, "a positive integer (optimizer steps) or null")
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self._last_step = -1

    @property
    def path(self) -> Path:
        return self.dirpath / RESUME_FILE

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._step_due(trainer) and not validation_or_epoch_end_follows(trainer):
            self._save(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        if self._step_due(trainer) and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._save(trainer)  # the epoch-end save follows on the last batch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.every_n_steps:
            self._save(trainer)

    def _step_due(self, trainer) -> bool:
        n, step = self.every_n_steps, trainer.global_step
        return bool(n) and step % n == 0 and step != self._last_step and not trainer.fit_loop._should_accumulate() \
            and not trainer.should_stop

    def _save(self, trainer) -> None:
        self._last_step = trainer.global_step
        trainer.save_checkpoint(self.path, weights_only=False)

    def save_now(self, trainer) -> None:
        """At a clean point chosen by the caller (GracefulStop), whatever `every_n_steps` says."""
        if self._last_step != trainer.global_step or not self.path.is_file():
            self._save(trainer)


def validation_or_epoch_end_follows(trainer) -> bool:
    loop = trainer.fit_loop.epoch_loop
    if loop.batch_progress.is_last_batch:
        return True
    return bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher))
