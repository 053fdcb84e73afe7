"""Composing ftlab's configs outside a Hydra job: for the checks before a run or a sweep starts,
for `ftlab estimate`, for tests. A composition error (an unknown choice, a key that does not exist)
becomes a `UserError` naming the valid options."""

from __future__ import annotations

from contextlib import contextmanager

from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from ftlab.config.location import CONF_DIR, conf_dirs
from ftlab.config.plugins import register_plugins
from ftlab.config.resolvers import register_resolvers
from ftlab.errors import UserError

CONFIG_NAME = "config"


def composition_error(exc: Exception) -> UserError:
    """Hydra's multi-line composition message -> its first line and the available options."""
    lines = [line.strip() for line in str(exc).split("\n") if line.strip()]
    start = next((i + 1 for i, x in enumerate(lines) if x.startswith("Available options")), len(lines))
    end = next((i for i, x in enumerate(lines) if x.startswith("Config search path")), len(lines))
    options = lines[start:end]
    first = lines[0] if lines else type(exc).__name__
    if first.startswith("Could not override"):  # a key the config does not have
        detail = str(exc.__cause__ or "").split("\n")[0]  # "Key 'x' is not in struct"
        return UserError(f"{first} {detail}".strip(),
                         "check the spelling (python -m ftlab --cfg job shows every key); +key=value adds a new one")
    if first.startswith("Ambiguous value for argument"):  # key=a,b without -m
        return UserError(f"{first}: a comma makes it a sweep",
                         "sweep with -m (ftlab -m key=a,b); a list is key=[a,b], a text with a comma key='a,b'")
    return UserError(first, f"use one of: {', '.join(options)}" if options else "check the overrides (ftlab --help)")


@contextmanager
def _initialized():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    register_plugins()
    if GlobalHydra.instance().is_initialized():  # inside a Hydra job (estimate from a test): compose there
        yield
        return
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        yield


def compose(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """The config a run with these overrides gets. `${hydra:runtime.choices.*}` resolves as in a run;
    `paths.output_dir` is the folder the run would create (created by nobody here)."""
    from hydra import compose as hydra_compose
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException

    with _initialized():
        try:
            cfg = hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as exc:
            raise composition_error(exc) from None
    HydraConfig.instance().set_config(cfg)  # before anything resolves ${hydra:...}
    try:
        run_dir = str(OmegaConf.select(cfg, "hydra.run.dir"))
    except OmegaConfBaseException:
        run_dir = "<run dir>"
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.runtime.output_dir = run_dir
    HydraConfig.instance().set_config(cfg)
    if not with_hydra:
        with open_dict(cfg):
            if OmegaConf.is_interpolation(cfg.paths, "output_dir"):  # (unless the overrides set it)
                cfg.paths.output_dir = str(cfg.hydra.runtime.output_dir)
            del cfg["hydra"]
    return cfg


def sweep_points(overrides: list[str]) -> tuple[list[list[str]], str]:
    """The overrides of every job a `-m` sweep would launch (command line plus a preset's
    `hydra.sweeper.params`), as Hydra's basic sweeper expands them, and the sweeper's target. A search
    (Optuna) draws its points as it goes: its points are the ends of its ranges and every choice
    (ftlab/sweepers/space.py); another sweeper's: its fixed overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from hydra.types import RunMode

    with _initialized():
        loader = GlobalHydra.instance().config_loader()
        try:
            cfg = loader.load_configuration(CONFIG_NAME, list(overrides), run_mode=RunMode.MULTIRUN)
            sweeper = str(cfg.hydra.sweeper.get("_target_", ""))
            node = OmegaConf.select(cfg, "hydra.sweeper.params")
            params = OmegaConf.to_container(node) if isinstance(node, DictConfig) else {}
            parser = OverridesParser.create(config_loader=loader)
            args = [f"{k}={v}" for k, v in (params or {}).items()] + list(overrides)
            if sweeper.endswith("OptunaSweeper"):  # a search: the ends of its ranges and its choices
                from ftlab.sweepers.space import check_points, check_settings

                check_settings(cfg.hydra.sweeper)
                return [point for _, point in check_points(args)], sweeper
            if not sweeper.endswith("BasicSweeper"):
                fixed = [o.input_line for o in parser.parse_overrides(list(overrides)) if not o.is_sweep_override()]
                return [fixed], sweeper
            batches = BasicSweeper.split_arguments(parser.parse_overrides(args), None)
        except (HydraException, OmegaConfBaseException) as exc:
            raise composition_error(exc) from None
    return [list(point) for batch in batches for point in batch], sweeper


def hydra_mode(overrides: list[str]) -> str:
    """RUN or MULTIRUN, as Hydra decides it without -m: a preset may make the command a sweep
    (hparams_search sets hydra.mode=MULTIRUN)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    with _initialized():
        loader = GlobalHydra.instance().config_loader()
        try:
            cfg = loader.load_configuration(CONFIG_NAME, list(overrides), run_mode=RunMode.MULTIRUN,
                                            validate_sweep_overrides=False)
        except Exception:  # the run's own composition names the mistake
            return RunMode.RUN.name
    mode = cfg.hydra.get("mode")
    return getattr(mode, "name", str(mode or RunMode.RUN.name))


def group_options(group: str) -> list[str]:
    """The choices of a config group (`conf/<group>/*.yaml` and FTLAB_CONFIG_PATH's), helper folders
    not included."""
    return sorted({p.stem for folder in conf_dirs() for p in (folder / group).glob("*.yaml")})


def groups() -> list[str]:
    """The config groups a user chooses from (hydra's own and preset helpers left out)."""
    return sorted({p.name for folder in conf_dirs() for p in folder.iterdir() if p.is_dir() and p.name != "hydra"})


def group_node(group: str, name: str) -> DictConfig:
    """One option's own YAML (e.g. the `dataset` config another source is built from), unresolved."""
    path = next((folder / group / f"{name}.yaml" for folder in conf_dirs()
                 if (folder / group / f"{name}.yaml").is_file()), None)
    if path is None:
        from ftlab.errors import InvalidChoice

        raise InvalidChoice(group, name, group_options(group))
    return OmegaConf.load(path)
