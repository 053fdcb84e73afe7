"""A run's own saved config (`<run dir>/.hydra/`, as Hydra wrote it): what `ftlab resume=`
rebuilds a run from and what `ftlab report` reads a run's overrides from."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from ftlab.errors import UserError

HYDRA_CALL = re.compile(r"(?<!\\)\$\{hydra:([^${}]+)\}")  # `${hydra:runtime.choices.dataset}`, innermost


def parse_value(text: str):
    """A command-line value as Hydra would type it (`2` an int, `true` a bool, `a` a string)."""
    return yaml.safe_load(text)


def saved_overrides(run_dir: Path) -> list[str] | None:
    """The run's Hydra task overrides, or None when its .hydra folder has none readable."""
    try:
        return list(yaml.safe_load((Path(run_dir) / ".hydra" / "overrides.yaml").read_text()) or [])
    except (OSError, yaml.YAMLError):
        return None


def answer_hydra(node, hydra: DictConfig):
    """`node` (a config as plain containers, unresolved) with each `${hydra:<path>}` replaced by
    the run's own Hydra config's value: a preset reads `${hydra:runtime.choices.dataset}`, and
    `ftlab resume=` runs no Hydra job to ask. Answered here, in the config, so that Hydra's own
    `hydra` resolver stays as it is for any run after this one in the process."""
    if isinstance(node, dict):
        return {k: answer_hydra(v, hydra) for k, v in node.items()}
    if isinstance(node, list):
        return [answer_hydra(v, hydra) for v in node]
    if not isinstance(node, str) or "${hydra:" not in node:
        return node

    def value(path: str):
        found = OmegaConf.select(hydra, path.strip())
        return OmegaConf.to_container(found, resolve=True) if OmegaConf.is_config(found) else found

    whole = HYDRA_CALL.fullmatch(node)
    if whole:  # the value itself, of its own type, as the resolver would give it
        return value(whole.group(1))
    return HYDRA_CALL.sub(lambda m: str(value(m.group(1))), node)


def saved_run(run_dir: Path) -> tuple[Path, DictConfig, dict, list]:
    """The run's folder as the run named it (Lightning's ModelCheckpoint reloads its record of the
    best checkpoint only into the same path), its config as Hydra saved it (unresolved, but for its
    `${hydra:...}`, answered from the run's .hydra/hydra.yaml), pointed at that folder, its choices
    and its overrides."""
    hydra_dir = run_dir / ".hydra"
    overrides = OmegaConf.to_container(OmegaConf.load(hydra_dir / "overrides.yaml")) \
        if (hydra_dir / "overrides.yaml").is_file() else []
    choices = {}
    cfg = OmegaConf.load(hydra_dir / "config.yaml")
    if (hydra_dir / "hydra.yaml").is_file():
        hydra = OmegaConf.load(hydra_dir / "hydra.yaml").hydra
        try:
            cfg = OmegaConf.create(answer_hydra(OmegaConf.to_container(cfg, resolve=False), hydra))
        except Exception as err:
            raise does_not_resolve(run_dir, err) from None
        runtime = hydra.get("runtime") or {}
        named = runtime.get("output_dir")
        if named and Path(named).is_dir() and os.path.samefile(named, run_dir):  # e.g. reached through a link
            run_dir = Path(named)
        node = runtime.get("choices") or {}
        choices = {k: v for k, v in OmegaConf.to_container(node).items() if not k.startswith("hydra") and "@" not in k}
    cfg.paths.output_dir = str(run_dir)
    return run_dir, cfg, choices, list(overrides)


def does_not_resolve(run_dir: Path, err: Exception) -> UserError:
    return UserError(f"the saved config of {run_dir} does not resolve here: {err}",
                     "resume on a machine where its paths and environment variables exist")
