"""ftlab's Hydra sweepers. `OptunaSweeper` is `hydra/sweeper=optuna` (conf/hydra/sweeper/optuna.yaml):
a light entry that Hydra instantiates, importing Optuna (two seconds) only when a search runs;
the search itself is `optuna_search.OptunaSearch`."""

from __future__ import annotations

from hydra.plugins.sweeper import Sweeper

TARGET = "hydra_plugins.ftlab.OptunaSweeper"  # optuna.yaml's _target_ (Hydra takes sweepers from hydra_plugins only)
OUTCOME: dict = {}  # this process's last search: trials complete / in all, for ftlab.cli's exit status


class OptunaSweeper(Sweeper):
    def __init__(self, **settings):
        from ftlab.sweepers.optuna_search import OptunaSearch

        self.search = OptunaSearch(**settings)

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.search.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.search.sweep(arguments)
