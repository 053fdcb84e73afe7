"""Learning-rate schedules with warmup, from transformers (`conf/scheduler/*.yaml`)."""

from __future__ import annotations

from transformers import get_scheduler

from ftlab.errors import InvalidChoice, UserError

SCHEDULES = ("linear", "cosine", "constant", "polynomial", "cosine_with_restarts", "inverse_sqrt")


def warmup_schedule(optimizer, num_training_steps: int, name: str = "linear", warmup_steps: int = 0, warmup_ratio: float = 0.0):
    """Warmup by steps, or by a ratio of all optimizer steps when `warmup_steps` is 0."""
    if name not in SCHEDULES:
        raise InvalidChoice("scheduler.name", name, SCHEDULES)
    if warmup_steps < 0 or not 0.0 <= warmup_ratio < 1.0:
        raise UserError(
            f"scheduler warmup_steps={warmup_steps} / warmup_ratio={warmup_ratio} out of range",
            "use warmup_steps >= 0 or a warmup_ratio in [0, 1)",
        )
    warmup = warmup_steps or int(round(warmup_ratio * num_training_steps))
    if name == "constant":
        name = "constant_with_warmup" if warmup else "constant"
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=num_training_steps)
