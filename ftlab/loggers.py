"""ftlab's loggers: Lightning's CSV and TensorBoard loggers that can go on with a resumed run's
logs (`continue_at`, called by ftlab/resume.py), and loggers that need an optional package, checked
when the logger is built, with the fix."""

from __future__ import annotations

import csv
import importlib.util
import warnings
from pathlib import Path

from lightning.pytorch import loggers as pl_loggers

from ftlab.errors import UserError


class CSVLogger(pl_loggers.CSVLogger):
    """`logger=csv`: Lightning's CSVLogger; settings as lightning.pytorch.loggers.CSVLogger."""

    def continue_at(self, step: int) -> CSVLogger:
        """Go on in metrics.csv with its rows of the steps before `step` (the checkpoint's): the rows
        the killed process wrote from there on, the resumed run writes again. Lightning's writer
        deletes an existing metrics.csv when it starts, so the rows are read first and logged again
        through it. Rank 0 only, before the writer starts (continue_logs)."""
        path = Path(self.log_dir) / "metrics.csv"
        rows = []
        if path.is_file():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if (r.get("step") or "").isdigit() and int(r["step"]) < step]
        with warnings.catch_warnings():  # "... will be deleted": the rows to keep are read
            warnings.filterwarnings("ignore", message="Experiment logs directory")
            writer = self.experiment
        for row in rows:  # as they were written: the same text, to the digit
            writer.log_metrics({k: v for k, v in row.items() if k not in ("step", None)}, int(row["step"]))
        self.save()
        return self


class TensorBoardLogger(pl_loggers.TensorBoardLogger):
    """`logger=tensorboard`: Lightning's TensorBoardLogger; settings as
    lightning.pytorch.loggers.TensorBoardLogger (any other key goes to its SummaryWriter)."""

    def __init__(self, save_dir, **kwargs):
        super().__init__(save_dir, **kwargs)
        self._init_arguments = {"save_dir": save_dir, **kwargs}  # to build the continuing logger with

    def continue_at(self, step: int) -> TensorBoardLogger:
        """This logger built again with `purge_step=step` for its SummaryWriter: TensorBoard hides
        the events the killed process wrote from `step` (the checkpoint's) on; the resumed run
        writes them again. Use the returned logger in place of this one."""
        return type(self)(**{**self._init_arguments, "purge_step": step})


def wandb(**kwargs):
    """`logger=wandb`: Lightning's WandbLogger; settings as lightning.pytorch.loggers.WandbLogger
    (and `wandb.init` for any other key)."""
    if importlib.util.find_spec("wandb") is None:
        raise UserError("logger=wandb needs the wandb package, which is not installed",
                        "pip install wandb (then `wandb login`, or WANDB_MODE=offline), or use logger=tensorboard")
    return pl_loggers.WandbLogger(**kwargs)
