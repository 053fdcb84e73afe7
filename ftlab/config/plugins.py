"""The Hydra plugins ftlab registers before any config is composed: its search and the folders of
FTLAB_CONFIG_PATH (ftlab/config/location.py).

`hydra/sweeper=optuna` is ftlab's search (conf/hydra/sweeper/optuna.yaml, ftlab/sweepers/): the
Optuna plugin registers a structured config of the same name, and Hydra refuses a YAML whose name a
registered schema also has, so that schema is taken out (its sampler options stay). Hydra builds
sweepers only from the `hydra_plugins` namespace: ftlab's is entered there by name.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

SWEEPER_GROUP = ("hydra", "sweeper")
REPLACED = "optuna.yaml"


class ExtraConfigs(SearchPathPlugin):
    """FTLAB_CONFIG_PATH's folders after ftlab's own configs, read again at each Hydra start."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from ftlab.config.location import extra_conf_dirs

        for folder in extra_conf_dirs():
            search_path.append(provider="FTLAB_CONFIG_PATH", path=f"file://{folder}")


def register_plugins() -> None:
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()  # (scans hydra_plugins: the Optuna plugin stores its schema now)
    from ftlab.sweepers import TARGET, OptunaSweeper

    plugins.class_name_to_class[TARGET] = OptunaSweeper
    plugins.register(ExtraConfigs)  # (a second registration is a no-op)
    group = ConfigStore.instance().repo
    for name in SWEEPER_GROUP:
        group = group.get(name, {})
    group.pop(REPLACED, None)
