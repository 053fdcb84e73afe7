"""Every check the config alone can decide, run when it is composed: before any data or weights
load, before a run folder exists, and in `-m` mode for every point of a sweep before the first job
starts. `ftlab --cfg job` runs them too, and so does every job (a SLURM node checks what it got).

Order: the schema (types, ranges, choices of ftlab's own keys), then each `_target_` node against
its class's signature, then the constructors that validate their settings without loading
anything (the method, the data source, the backbone, the optimizer on a probe parameter, the
schedule, Lightning's Trainer), then what needs two groups at once (CUDA-only options on a CPU,
the monitored metric against the dataset's task).
"""

from __future__ import annotations

import logging
import warnings

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from ftlab.config.schema import typed
from ftlab.config.signature import build, check_node
from ftlab.errors import InvalidChoice, NeedsCuda, UserError, user_error_in

log = logging.getLogger(__name__)

# target nodes and the runtime objects their builders are given (not config keys)
TARGETS = {"model": set(), "dataset": set(), "data": {"source", "tokenizer", "seed"}, "peft": set(),
           "optimizer": {"params"}, "scheduler": {"optimizer", "num_training_steps"},
           "trainer": {"callbacks", "logger", "plugins"}}
MAPPINGS = ("logger", "callbacks")  # a mapping of target nodes each


def presets() -> list[str]:
    from ftlab.config.composition import group_options

    return group_options("experiment")


def refuse_helper_preset(choices: dict) -> None:
    """`experiment=methods/...` composes (Hydra sees a file), but it is a part of a preset, not one."""
    chosen = choices.get("experiment")
    if chosen and "/" in str(chosen):
        raise UserError(f"experiment={chosen} is a part of a preset, not a preset",
                        f"choose one of the presets: {', '.join(presets())}")


def _resolved(cfg: DictConfig, key: str):
    try:
        return OmegaConf.to_container(cfg[key], resolve=True)
    except OmegaConfBaseException as err:
        cause = user_error_in(err)
        if cause is not None:
            raise cause from None
        raise UserError(f"{key}: {str(err).splitlines()[0]}", f"check the {key}.* settings") from None


def check_targets(cfg: DictConfig) -> None:
    """Keys and value types of every `_target_` node, against the signature of what it builds."""
    for key, provided in TARGETS.items():
        if cfg.get(key) is not None:
            check_node(key, _resolved(cfg, key), provided)


def check_method_choice(cfg: DictConfig, choices: dict) -> None:
    """`peft=<name>` builds the class registered as <name> (ftlab/peft/registry.py)."""
    from ftlab.peft.registry import check_choice

    if choices.get("peft") and cfg.get("peft") is not None and cfg.peft.get("_target_"):
        check_choice(str(choices["peft"]), str(cfg.peft._target_))


def check_mappings(cfg: DictConfig) -> None:
    """Loggers and callbacks; `cfg` has `monitor` filled (callbacks interpolate it)."""
    for key in MAPPINGS:
        for name, node in (_resolved(cfg, key) or {}).items() if cfg.get(key) else ():
            if isinstance(node, dict) and "_target_" in node:
                check_node(f"{key}.{name}", node, set())


def uses_fsdp(cfg: DictConfig) -> bool:
    strategy = cfg.trainer.get("strategy")
    return "fsdp" in str(strategy.get("_target_") if isinstance(strategy, DictConfig) else strategy).lower()


def refuse_cuda_only_on_cpu(cfg: DictConfig) -> None:
    """fp16 and a GPU accelerator need CUDA; say so at start rather than crash or crawl."""
    import torch

    if torch.cuda.is_available():
        return
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda"):
        raise NeedsCuda(f"trainer.accelerator={accelerator}", "use trainer.accelerator=cpu (or auto)")
    if uses_fsdp(cfg):
        raise NeedsCuda("trainer=fsdp (Lightning's FSDP)", "on CPU use trainer=ddp trainer.accelerator=cpu")
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision in ("16", "16-mixed", "16-true"):
        raise NeedsCuda(f"trainer.precision={precision} (fp16)", "on CPU use trainer.precision=bf16-mixed or 32-true")


def resolve_precision(cfg: DictConfig) -> None:
    """trainer.precision=auto -> what this machine multiplies natively (ftlab/precision.py), in place;
    a bf16 precision chosen where the device only emulates it is kept, with a warning."""
    from ftlab.precision import AUTO, emulated_bf16_warning, resolve

    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    chosen = str(cfg.trainer.get("precision"))
    if chosen != AUTO:
        warning = chosen.startswith("bf16") and emulated_bf16_warning(
            f"trainer.precision={chosen}", accelerator, "trainer.precision=auto (or 32-true) trains at this machine's full speed")
        if warning:
            log.warning(warning)
        return
    precision, why = resolve(AUTO, accelerator)
    with open_dict(cfg):
        cfg.trainer.precision = precision
    log.info("trainer.precision=auto: %s (%s)", precision, why)


def check_eval_interval(cfg: DictConfig) -> None:
    if cfg.get("eval_every_n_steps") is not None and cfg.trainer.get("val_check_interval") is not None:
        raise UserError("eval_every_n_steps and trainer.val_check_interval are both set",
                        "keep one: eval_every_n_steps counts optimizer steps, val_check_interval batches")


def monitored_metrics(task) -> list[str]:
    from ftlab.models.metrics import build_metrics

    return ["val/loss"] + [f"val/{name}" for name in build_metrics(task).keys()]


def resolve_monitor(cfg: DictConfig, task) -> None:
    """Fill `monitor` / `monitor_mode` from the dataset when the user left them null; check them."""
    with open_dict(cfg):
        if cfg.monitor is None:
            cfg.monitor, cfg.monitor_mode = task.monitor, task.monitor_mode
        elif cfg.monitor_mode is None:
            cfg.monitor_mode = "min" if cfg.monitor.endswith(("loss", "mse")) else "max"
    valid = monitored_metrics(task)
    if cfg.monitor not in valid:
        raise InvalidChoice("monitor", cfg.monitor, valid)
    if cfg.monitor_mode not in ("min", "max"):
        raise InvalidChoice("monitor_mode", cfg.monitor_mode, ("min", "max"))


def _quiet_trainer_init():
    """Lightning announces the accelerator it picked when a Trainer is built; a check is not a run."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    previous = logger.level
    logger.setLevel(logging.WARNING)
    return logger, previous


def check_builders(cfg: DictConfig) -> None:
    """The constructors that validate their settings and load nothing."""
    import torch

    from ftlab.data.datamodule import check_settings
    from ftlab.models.module import make_optimizer

    check_settings(**check_node("data", _resolved(cfg, "data"), TARGETS["data"]))  # (coerced values)
    injector = build(cfg, "peft")
    source = build(cfg, "dataset")
    build(cfg, "model")
    if injector.trains and cfg.get("optimizer") is not None:
        probe = [{"params": [torch.nn.Parameter(torch.zeros(2, 2))]}]
        optimizer = make_optimizer(build(cfg, "optimizer"), probe)
        if cfg.get("scheduler") is not None:
            build(cfg, "scheduler")(optimizer, num_training_steps=100)
    logger, previous = _quiet_trainer_init()
    try:
        with warnings.catch_warnings():  # ("srun is available but not used": the run's own Trainer says it)
            warnings.simplefilter("ignore")
            build(cfg, "trainer", callbacks=[], logger=False)
    finally:
        logger.setLevel(previous)
    check_mappings(monitored(cfg, source))
    check_loss_settings(cfg, source)


def check_loss_settings(cfg: DictConfig, source) -> None:
    """`loss.*`, and against the task where the dataset knows its labels without the data (a local
    file's are checked once it is read, before training)."""
    from ftlab.models.loss import check_loss

    task = None if getattr(source, "task_needs_data", False) else source.task()
    check_loss(_resolved(cfg, "loss") if cfg.get("loss") is not None else None, task,
               getattr(source, "name", "") or type(source).__name__)


def monitored(cfg: DictConfig, source=None) -> DictConfig:
    """A copy of the config with `monitor` / `monitor_mode` as the run will have them (checked)."""
    source = source if source is not None else build(cfg, "dataset")
    probe = cfg.copy()
    if not getattr(source, "task_needs_data", False):  # (a local file's labels are read with the data)
        resolve_monitor(probe, source.task())
    elif probe.monitor is None or probe.monitor_mode is None:  # checked once the data is read
        with open_dict(probe):
            probe.monitor, probe.monitor_mode = probe.monitor or "val/loss", probe.monitor_mode or "min"
    return probe


def monitor_of(cfg: DictConfig) -> tuple[str, str]:
    """(metric, mode) the run will monitor: the dataset's choice where the config leaves them null."""
    probe = monitored(cfg)
    return str(probe.monitor), str(probe.monitor_mode)


def checked(cfg: DictConfig, choices: dict | None = None) -> DictConfig:
    """The config as the run will use it, typed and checked, or a `UserError` naming the key, the
    value, what is expected and an example."""
    refuse_helper_preset(choices or {})
    cfg = typed(cfg)
    resolve_precision(cfg)  # before the trainer's arguments are checked: Lightning has no `auto`
    check_targets(cfg)
    check_method_choice(cfg, choices or {})
    refuse_cuda_only_on_cpu(cfg)
    check_eval_interval(cfg)
    check_builders(cfg)
    return cfg
