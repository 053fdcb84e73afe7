"""User-facing errors.

Anything a user can fix (a path, an override, a data row) raises a `UserError`: the CLI prints its
message and the fix on one or two lines and exits non-zero, with no traceback. Bugs stay ordinary
exceptions so that their traceback is kept.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from pathlib import Path


class UserError(Exception):
    """A mistake the user can fix; `fix` says how."""

    def __init__(self, problem: str, fix: str = ""):
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}" if self.fix else self.problem


def _choices(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


class DataFileMissing(UserError):
    def __init__(self, path: Path | str, fmt: str, source: str):
        super().__init__(
            f"data file not found: {path} (expected {fmt})",
            f"{source}; or point FTLAB_DATA_DIR / dataset.data_dir at the folder that holds it",
        )


class MalformedRow(UserError):
    def __init__(self, path: Path | str, line: int, reason: str, fmt: str):
        super().__init__(
            f"malformed row in {path}, line {line}: {reason}",
            f"each row must be {fmt}; correct or remove that line",
        )


class UnknownLabel(UserError):
    def __init__(self, path: Path | str, line: int, label: object, known: Iterable[object]):
        super().__init__(
            f"unknown label {label!r} in {path}, line {line}",
            f"known labels are: {_choices(known)}",
        )


class InvalidChoice(UserError):
    def __init__(self, key: str, value: object, valid: Iterable[object]):
        super().__init__(f"{key}={value!r} is not a valid choice", f"use one of: {_choices(valid)}")


class InvalidValue(UserError):
    def __init__(self, key: str, value: object, expected: str):
        super().__init__(f"{key}={value!r}: expected {expected}", f"override it as {key}=<{expected}>")


class NeedsCuda(UserError):
    def __init__(self, feature: str, alternative: str):
        super().__init__(f"{feature} needs a CUDA GPU and none is available", alternative)


class RunInterrupted(Exception):
    """A run stopped by a signal at a clean point; `step` optimizer steps are in its resume checkpoint."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step = signum, step

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def user_error_in(exc: BaseException | None) -> UserError | None:
    """The UserError behind `exc`, however deep libraries wrapped it (OmegaConf wraps a resolver's
    error twice), so that its own message and fix reach the user; None when there is none."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
