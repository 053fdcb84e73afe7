"""`hydra/sweeper=optuna`'s sweeper: the Optuna plugin's, made to hold a real search.

What the plugin's own sweep does not, and this one does:
- the study lives in the sweep folder (`study.py`: <sweep dir>/optuna.db), so a stopped search
  continues when the same command is run again with `hydra.sweep.dir=<that folder>`, and runs only
  the trials still missing (a trial the stop cut short first, with its parameters); trial n runs in
  job folder n, so nothing earlier is overwritten;
- a failed trial (the run's error, a diverged loss, a SLURM job that ended without a result) is
  told to the study as failed and the search goes on; the plugin ends the search at the first one.
  Only when the first GIVE_UP trials all fail, and none completed, does the search stop: then the
  cause is not the values drawn (a missing data file fails every trial alike);
- the direction follows the run's `monitor_mode` (the dataset's choice when null): `direction: auto`;
- the sampler gets the search's `seed` (the run's seed by default), so a search is reproducible;
  `hydra/sweeper/sampler=grid` runs every combination of the space's choices once;
- a folder holding a search of other overrides is refused instead of being mixed into.
The number each trial reports is the run's best validation value of `monitor` (ftlab.cli.hydra_entry).

Hydra builds it through the light entry `ftlab.sweepers.OptunaSweeper`.
"""

from __future__ import annotations

import functools
import logging
import math
import sys
from pathlib import Path

from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import DictConfig, OmegaConf

from ftlab.errors import UserError
from ftlab.sweepers import OUTCOME, study as stored

log = logging.getLogger(__name__)
NOT_THE_SEARCH = ("hydra.sweep.dir",)  # overrides that may differ when a search is continued
GIVE_UP = 3  # a search whose first this many trials all fail stops: the sampled values are not the cause


def refuse(err: UserError):
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(1)


def monitor_and_direction(config: DictConfig, direction: str) -> tuple[str, str]:
    """The metric each trial reports, and the direction: `auto` follows monitor_mode."""
    from ftlab.config.checks import monitor_of

    metric, mode = monitor_of(config)
    if direction == "auto":
        direction = "maximize" if mode == "max" else "minimize"
    return metric, direction


def make_sampler(sampler: DictConfig, seed, space: dict):
    """The sampler its config names, given the search's seed when it takes one and sets none; a grid
    sampler gets the space's choices (every key must then be a choice or a range)."""
    import inspect

    from hydra.utils import get_class, instantiate

    cls = get_class(sampler._target_)
    extra = {}
    if "seed" in inspect.signature(cls).parameters and sampler.get("seed") is None:
        extra["seed"] = seed
    made = instantiate(sampler, **extra)
    if isinstance(made, functools.partial):  # GridSampler: the grid is the space
        grid = {}
        for key, dist in space.items():
            if not hasattr(dist, "choices"):
                raise UserError(f"hydra/sweeper/sampler=grid needs choices: {key} is a {type(dist).__name__}",
                                f"give {key} as choice(a, b, ...) or range(a, b, step)")
            grid[key] = list(dist.choices)
        made = made(grid)
    return made


def grid_size(sampler) -> int | None:
    grid = getattr(sampler, "_search_space", None)
    return math.prod(len(v) for v in grid.values()) if isinstance(grid, dict) else None


class OptunaSearch(OptunaSweeperImpl):
    def __init__(self, sampler, direction, storage, study_name, n_trials, n_jobs, params, seed=None,
                 search_space=None, custom_search_space=None, max_failure_rate=1.0):
        super().__init__(sampler, direction, storage, study_name, n_trials, n_jobs, max_failure_rate,
                         search_space, custom_search_space, params)
        self.seed = seed

    def _study(self, command: list[str]):
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        storage = stored.storage_url(sweep_dir) if self.storage in (None, "auto") else self.storage
        name = stored.STUDY_NAME if self.study_name in (None, "auto") else self.study_name
        metric, direction = monitor_and_direction(self.config, str(self.direction))
        study = stored.open_study(storage, name, self.sampler, direction)
        before = study.user_attrs.get(stored.COMMAND)
        if before is None:
            study.set_user_attr(stored.COMMAND, command)
            study.set_user_attr(stored.MONITOR, metric)
        elif before != command:
            refuse(UserError(f"{sweep_dir} holds a search of other overrides ({' '.join(before)})",
                             "continue it with those overrides, or choose another hydra.sweep.dir"))
        if study.direction.name.lower() != direction:
            refuse(UserError(f"{sweep_dir} holds a search that {study.direction.name.lower()}s, not {direction}s",
                             "choose another hydra.sweep.dir"))
        return study, sweep_dir

    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from optuna.trial import TrialState

        self._process_searchspace_config()
        params = self._parse_sweeper_params_config() + list(arguments)
        space, fixed = create_params_from_overrides(params)
        for key in fixed:
            space.pop(key, None)
        command = [a for a in params if a.split("=", 1)[0] not in NOT_THE_SEARCH]
        try:
            self.sampler = make_sampler(self.sampler, self.seed, space)
        except UserError as err:
            refuse(err)
        n_trials = min(self.n_trials, grid_size(self.sampler) or self.n_trials)
        study, sweep_dir = self._study(command)
        to_go = max(0, n_trials - stored.done(study))
        log.info("search: %d of %d trials to run; study %s (stopped? run the same command with "
                 "hydra.sweep.dir=%s to continue)", to_go, n_trials, sweep_dir / stored.STUDY_FILE, sweep_dir)
        OUTCOME.clear()
        while to_go > 0 and not self._hopeless(study):
            trials = [study.ask() for _ in range(min(to_go, self.n_jobs))]
            overrides = self._configure_trials(trials, space, fixed)
            returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            for trial, ret in zip(trials, returns):
                value = self._value(ret)
                try:
                    study.tell(trial, state=TrialState.FAIL) if value is None else study.tell(trial, value)
                except RuntimeError as err:  # a grid sampler calls study.stop() once the grid is done,
                    if "Study.stop" not in str(err):  # which Optuna allows only inside optimize()
                        raise
            to_go -= len(trials)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        OUTCOME.update(complete=len(complete), trials=len(study.trials))
        if not complete:
            return
        best = study.best_trial
        log.info("best of %d trials: trial %d, %s = %s, %s", len(complete), best.number,
                 study.user_attrs.get(stored.MONITOR), best.value, best.params)
        OmegaConf.save(OmegaConf.create({"name": "optuna", "best_trial": best.number, "best_params": best.params,
                                         "best_value": best.value, "monitor": study.user_attrs.get(stored.MONITOR), "direction": study.direction.name.lower(),
                                         "n_complete": len(complete), "n_trials": len(study.trials),
                                         "optuna": optuna.__version__}),
                       sweep_dir / "optimization_results.yaml")

    @staticmethod
    def _hopeless(study) -> bool:
        """The first GIVE_UP trials all failed: the cause is not the sampled values (data, model, disk)."""
        from optuna.trial import TrialState

        states = [t.state for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(stored.INTERRUPTED)]
        if len(states) >= GIVE_UP and TrialState.COMPLETE not in states:
            log.error("the first %d trials of this search failed and none completed: the search stops "
                      "(each trial's error is above)", len(states))
            return True
        return False

    @staticmethod
    def _value(ret) -> float | None:
        """The trial's number, or None when its job failed (the run already said why)."""
        try:
            value = ret.return_value
        except Exception as err:  # the job raised (a bug in a launcher's process): the trial failed
            log.warning("trial failed: %s", err)
            return None
        if value is None:
            return None
        value = float(value)
        return None if value != value else value  # NaN: a failed trial, for Optuna too
