"""A search's Optuna study: `<sweep dir>/optuna.db` (SQLite). This module is the one owner of
that file: the sweeper opens it through `open_study`, `ftlab report` reads it through `trials`.

Trial n runs in the sweep's job folder n (`hydra.job.num` = the trial's number), so a trial's
parameters, value and run folder are one row. A trial left RUNNING by a search that was stopped
(Ctrl-C, a killed process) is closed as failed with the user attribute `interrupted` and its
parameters queued again, so the continued search runs it first; `done` does not count it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

STUDY_FILE = "optuna.db"
STUDY_NAME = "ftlab"
INTERRUPTED = "interrupted"  # user attribute of a trial that a stopped search left unfinished
COMMAND = "command"  # study attribute: the overrides that defined the search
MONITOR = "monitor"  # study attribute: the validation metric each trial reports


def storage_url(sweep_dir: str | Path) -> str:
    return f"sqlite:///{Path(sweep_dir).resolve() / STUDY_FILE}"


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def open_study(storage: str, name: str, sampler, direction: str):
    """The study (created, or loaded to continue), its trials of a stopped search closed and requeued."""
    import optuna
    from optuna.trial import TrialState

    _quiet_optuna()
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, direction=direction,
                                load_if_exists=True)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(dict(trial.params))
    return study


def done(study) -> int:
    """Trials that count towards n_trials: finished, or failed on their own (not stopped with the search)."""
    from optuna.trial import TrialState

    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False, states=finished) if not t.user_attrs.get(INTERRUPTED))


@dataclass
class Trial:
    number: int
    state: str  # complete, failed, interrupted, running
    value: float | None
    params: dict
    run_dir: Path | None


@dataclass
class Search:
    folder: Path
    direction: str
    trials: list[Trial]
    command: list[str] = field(default_factory=list)
    monitor: str = "monitor"

    @property
    def best(self) -> Trial | None:
        scored = [t for t in self.trials if t.state == "complete" and t.value is not None]
        if not scored:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(scored, key=lambda t: t.value)

    @property
    def space(self) -> list[str]:
        return sorted({key for t in self.trials for key in t.params})


def is_search(folder: Path) -> bool:
    return (Path(folder) / STUDY_FILE).is_file()


def load_search(folder: Path) -> Search:
    """Every trial of the search stored in `folder`, with its run folder (for `ftlab report`)."""
    import optuna

    _quiet_optuna()
    folder = Path(folder)
    storage = storage_url(folder)
    summaries = optuna.get_all_study_summaries(storage)
    name = STUDY_NAME if any(s.study_name == STUDY_NAME for s in summaries) else summaries[0].study_name
    study = optuna.load_study(study_name=name, storage=storage)
    trials = []
    for t in study.get_trials(deepcopy=False):
        state = t.state.name.lower()
        if state == "fail":
            state = INTERRUPTED if t.user_attrs.get(INTERRUPTED) else "failed"
        run_dirs = sorted(folder.glob(f"{t.number}_*")) or sorted(folder.glob(str(t.number)))
        trials.append(Trial(t.number, state, t.value, dict(t.params), run_dirs[0] if run_dirs else None))
    return Search(folder, study.direction.name.lower(), trials, list(study.user_attrs.get(COMMAND, [])),
                  str(study.user_attrs.get(MONITOR, "monitor")))
