"""Loggers that need an optional package: checked when the logger is built, with the fix."""

from __future__ import annotations

import importlib.util

from ftlab.errors import UserError


def wandb(**kwargs):
    """`logger=wandb`: Lightning's WandbLogger; settings as lightning.pytorch.loggers.WandbLogger
    (and `wandb.init` for any other key)."""
    if importlib.util.find_spec("wandb") is None:
        raise UserError("logger=wandb needs the wandb package, which is not installed",
                        "pip install wandb (then `wandb login`, or WANDB_MODE=offline), or use logger=tensorboard")
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(**kwargs)
