"""Sources built from other dataset configs by name: a few-shot source's base, a multi source's parts.

A name is a choice of the `dataset` group (ftlab's `conf/dataset/` and FTLAB_CONFIG_PATH's), built
with the composite's `data_dir` and checked like a `dataset=` choice. The part's constructor names
its settings as mounted at `dataset.`; here they are elsewhere (`dataset.base_overrides`), so its
errors are re-keyed to the place the user has to change.
"""

from __future__ import annotations

import re

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ftlab.data.sources.base import DataSource
from ftlab.data.task import TaskSpec, TaskType
from ftlab.errors import InvalidChoice, UserError

NOT_NAMEABLE = ("local", "multi")  # need paths / parts of their own: not usable as a part or a base by name
_MOUNTED_AT = re.compile(r"\bdataset\.(?=\w)")


def dataset_configs() -> list[str]:
    """Names of the dataset configs another dataset can be built from."""
    from ftlab.config import group_options

    return [name for name in group_options("dataset") if name not in NOT_NAMEABLE]


def rekeyed(err: UserError, settings_key: str) -> UserError:
    """The part's `dataset.<setting>` as `<settings_key>.<setting>`."""
    return UserError(_MOUNTED_AT.sub(f"{settings_key}.", err.problem), _MOUNTED_AT.sub(f"{settings_key}.", err.fix))


def named_source(
    name: str, data_dir: str | None, key: str, overrides: dict | None = None, settings_key: str | None = None
) -> DataSource:
    """Build the source of the dataset config `name` with `data_dir` (and `overrides` on top), checked
    like a `dataset=` choice. `key` names the setting that chose `name` (`dataset.parts`), `settings_key`
    the node its settings are reported under (default `<key>[<name>]`)."""
    from ftlab.config import check_node, group_node  # ftlab.config imports Hydra helpers only

    valid = dataset_configs()
    if not isinstance(name, str) or name not in valid:
        raise InvalidChoice(key, name, valid)
    settings_key = settings_key or f"{key}[{name}]"
    node = group_node("dataset", name)
    if "data_dir" in node:
        node.data_dir = data_dir
    if overrides:
        node = OmegaConf.merge(node, OmegaConf.create(dict(overrides)))
    plain = check_node(settings_key, OmegaConf.to_container(node, resolve=True), set())
    try:
        return instantiate(plain)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, UserError):
            raise rekeyed(cause, settings_key) from None
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(cause))
        if isinstance(cause, TypeError) and unexpected:  # a source taking **kwargs passes unknown keys on
            raise UserError(f"{settings_key}.{unexpected[1]} is not a setting of {plain['_target_']}",
                            f"see its config dataset/{name}.yaml for its settings") from None
        raise


def require_single_label(source: DataSource, what: str, fix: str) -> TaskSpec:
    task = source.task()
    if task.task_type is not TaskType.SINGLE_LABEL:
        raise UserError(f"{what} is a {task.task_type.value} dataset; only single-label datasets have classes to use", fix)
    return task
