"""Stop on a signal at a clean point, with the resume state written, and say so.

SIGTERM (`scancel`, a pre-empting scheduler, a container stop), SIGINT (Ctrl-C) and, outside a
submitit job, SIGUSR2 (the usual "requeue" warning) only set a flag here. Training goes on to the
next point from which `ftlab resume=` continues exactly (after an optimizer step that no
validation or epoch end follows, after a validation, at an epoch end; the same points
`ResumeCheckpoint` saves at), writes `checkpoints/resume.ckpt` there and raises `RunInterrupted`:
the run records `"status": "interrupted"` and the command exits 128 + the signal's number, as
shells expect. Lightning's own SIGTERM handling ends the process with exit code 0 and no word,
so this callback replaces it for the fit. A second Ctrl-C stops at once, as Ctrl-C does.
Under DDP the ranks agree on the flag at each clean point (one all-reduce), so all stop together.
It is a `Checkpoint` so that Lightning runs it after the other checkpoint callbacks (listed after
them in conf/callbacks/default.yaml): a validation's best checkpoint is written before it stops.
"""

from __future__ import annotations

import logging
import os
import signal

import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.trainer.states import TrainerFn

from ftlab.callbacks.resume_checkpoint import ResumeCheckpoint, validation_or_epoch_end_follows
from ftlab.errors import RunInterrupted  # noqa: F401  (raised here; defined where the CLI catches it without torch)

log = logging.getLogger(__name__)


def stop_signals(environ=os.environ) -> tuple[signal.Signals, ...]:
    """Inside a submitit job SIGUSR2 is submitit's own (checkpoint and requeue): left to it."""
    signals = (signal.SIGTERM, signal.SIGINT)
    return signals if environ.get("SUBMITIT_EXECUTOR") else signals + (signal.SIGUSR2,)


class GracefulStop(Checkpoint):
    def __init__(self):
        self.received: int | None = None
        self._previous: dict = {}

    # ---- handlers, while training (Lightning registers its own SIGTERM handler after on_fit_start:
    # replaced here, at on_train_start, and given back at the end)
    def on_train_start(self, trainer, pl_module) -> None:
        for signum in stop_signals():
            self._previous[signum] = signal.signal(signum, self._note)

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _note(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        if self.received is None:
            log.warning("received %s: stopping at the next point a resume continues from exactly",
                        signal.Signals(signum).name)
        self.received = signum

    # ---- clean points -------------------------------------------------------------------------
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop._should_accumulate() or validation_or_epoch_end_follows(trainer):
            return
        self._stop_if_asked(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:  # else the epoch end follows
            self._stop_if_asked(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop_if_asked(trainer)

    def _stop_if_asked(self, trainer) -> None:
        received = self.received or 0
        if trainer.world_size > 1:  # every rank stops at the same step, or none does
            flag = torch.tensor([received], device=trainer.strategy.root_device)
            received = int(trainer.strategy.reduce(flag, reduce_op=torch.distributed.ReduceOp.MAX).item())
        if not received:
            return
        resume = next(c for c in trainer.callbacks if isinstance(c, ResumeCheckpoint))
        resume.save_now(trainer)
        raise RunInterrupted(received, trainer.global_step)
