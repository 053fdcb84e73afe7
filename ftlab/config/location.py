"""Where the configs are: package data inside `ftlab/`, so an installed wheel composes as a checkout
does; plus the folders a user adds with FTLAB_CONFIG_PATH.

FTLAB_CONFIG_PATH lists folders (separated by `os.pathsep`, `:` on Linux) laid out like `ftlab/conf`
(`peft/<name>.yaml`, `dataset/<name>.yaml`, ...): their files are choices of the same groups, found
by every command, the checks, `ftlab --help` and the Python API alike (the Hydra search path gets
them through ftlab/config/plugins.py), so a method or a dataset can live outside this repository. A
file may not take the name of a shipped one or of another folder's: Hydra would quietly use the
first it finds, so such a clash is refused instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from ftlab.errors import UserError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
CONFIG_PATH_ENV = "FTLAB_CONFIG_PATH"


def extra_conf_dirs() -> list[Path]:
    """The FTLAB_CONFIG_PATH folders, checked: each exists and adds only new names."""
    folders = [Path(p).expanduser().resolve() for p in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep) if p]
    if not folders:
        return []
    seen = {path.relative_to(CONF_DIR): Path(CONF_DIR) for path in Path(CONF_DIR).rglob("*.yaml")}
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"{CONFIG_PATH_ENV} names {folder}, which is not a folder",
                            f"set {CONFIG_PATH_ENV} to folders holding <group>/<name>.yaml files (e.g. peft/mine.yaml)")
        for path in sorted(folder.rglob("*.yaml")):
            relative = path.relative_to(folder)
            if relative in seen:
                raise UserError(f"{path} takes the name of {seen[relative] / relative}",
                                f"rename it: a config in {CONFIG_PATH_ENV} adds a choice, it cannot replace one")
            seen[relative] = folder
    return folders


def conf_dirs() -> list[Path]:
    """Every config folder, ftlab's own first (the order of Hydra's search path)."""
    return [Path(CONF_DIR), *extra_conf_dirs()]
