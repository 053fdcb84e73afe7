"""The Hydra plugins ftlab puts in place of third-party ones, before any config is composed.

`hydra/sweeper=optuna` is ftlab's search (conf/hydra/sweeper/optuna.yaml, ftlab/sweepers/): the
Optuna plugin registers a structured config of the same name, and Hydra refuses a YAML whose name a
registered schema also has, so that schema is taken out (its sampler options stay). Hydra builds
sweepers only from the `hydra_plugins` namespace: ftlab's is entered there by name.
"""

from __future__ import annotations

SWEEPER_GROUP = ("hydra", "sweeper")
REPLACED = "optuna.yaml"


def register_plugins() -> None:
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()  # (scans hydra_plugins: the Optuna plugin stores its schema now)
    from ftlab.sweepers import TARGET, OptunaSweeper

    plugins.class_name_to_class[TARGET] = OptunaSweeper
    group = ConfigStore.instance().repo
    for name in SWEEPER_GROUP:
        group = group.get(name, {})
    group.pop(REPLACED, None)
