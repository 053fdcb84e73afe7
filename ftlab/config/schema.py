"""The schema of a run's config: types through OmegaConf structured configs, ranges and choices as
field metadata, checked together when the config is composed.

Group nodes that are one `_target_` class among several (peft, dataset, optimizer, trainer, ...)
are typed by their target's signature instead (ftlab/config/signature.py); the schema types the
keys ftlab itself reads: the top level, `paths`, `cpu`, `save`, `loss`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ftlab.errors import InvalidChoice, UserError


def _ranged(default, minimum=None, maximum=None, choices=None, example=None):
    return field(default=default, metadata={"min": minimum, "max": maximum, "choices": choices, "example": example})


@dataclass
class PathsConfig:
    data_dir: str = MISSING  # conf/paths/default.yaml sets all three
    cache_dir: str = MISSING
    output_dir: Optional[str] = None


@dataclass
class CpuConfig:
    keep_freed_memory: bool = True
    bulk_dropout: bool = True


@dataclass
class SaveConfig:
    model: bool = True
    export: bool = False


@dataclass
class LossConfig:
    """ftlab/models/loss.py checks the values (and against the dataset's task) and says why."""

    class_weights: Any = None  # null, `balanced` or one weight per label (single-label, cross-entropy)
    label_smoothing: float = 0.0  # in [0, 1) (single-label)
    pos_weight: Any = None  # null, `balanced` or one weight per label (multi-label, BCE)


@dataclass
class RunConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: Any = None
    model: Any = None
    dataset: Any = None
    peft: Any = None
    optimizer: Any = None
    scheduler: Any = None
    trainer: Any = None
    logger: Any = None
    callbacks: Any = None
    seed: int = _ranged(42, 0, 2**32 - 1, example=42)
    threads: Optional[int] = _ranged(None, 1, example=2)
    monitor: Optional[str] = None
    monitor_mode: Optional[str] = _ranged(None, choices=("min", "max"))
    eval_every_n_steps: Optional[int] = _ranged(None, 1, example=20)
    compile: bool = False
    cpu: CpuConfig = field(default_factory=CpuConfig)
    checkpoint_every_n_steps: Optional[int] = _ranged(None, 1, example=50)
    save: SaveConfig = field(default_factory=SaveConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    # a preset's own lookup tables (study000's per-pair batch sizes), read by its interpolations
    study: Any = None


_EXPECTED = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _field_of(key: str) -> dataclasses.Field | None:
    node: Any = RunConfig
    found = None
    for part in key.split("."):
        fields = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        found = fields.get(part)
        if found is None:
            return None
        node = found.type if isinstance(found.type, type) else _resolve(found.type)
    return found


def _resolve(annotation):
    """`from __future__ import annotations` leaves field types as strings: the class or base type."""
    name = str(annotation).removeprefix("Optional[").removesuffix("]")
    return {**{t.__name__: t for t in _EXPECTED}, "PathsConfig": PathsConfig, "CpuConfig": CpuConfig,
            "SaveConfig": SaveConfig, "LossConfig": LossConfig}.get(name, Any)


def _schema_error(err: OmegaConfBaseException) -> UserError:
    key = getattr(err, "full_key", None) or "config"
    value = getattr(err, "value", None)
    spec = _field_of(key)
    if spec is None:
        return UserError(f"{key} is not a setting of ftlab's config", "check the spelling (ftlab --help lists the groups)")
    expected = _EXPECTED.get(_resolve(spec.type), str(spec.type))
    optional = str(spec.type).startswith("Optional[")
    example = (spec.metadata or {}).get("example")
    fix = f"set {key} to {expected}" + (" or null" if optional else "") + (f", e.g. {key}={example}" if example is not None else "")
    return UserError(f"{key}={value!r}: expected {expected}", fix)


def _check_ranges(cfg: DictConfig, schema=RunConfig, prefix: str = "") -> None:
    for spec in dataclasses.fields(schema):
        key, value = prefix + spec.name, cfg.get(spec.name)
        sub = _resolve(spec.type)
        if dataclasses.is_dataclass(sub) and isinstance(value, DictConfig):
            _check_ranges(value, sub, key + ".")
            continue
        meta = spec.metadata or {}
        if value is None:
            continue
        if meta.get("choices") and value not in meta["choices"]:
            raise InvalidChoice(key, value, meta["choices"])
        low, high = meta.get("min"), meta.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = "a positive integer" if (low, high) == (1, None) else \
                f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
            raise UserError(f"{key}={value!r} is out of range: expected {bounds}",
                            f"e.g. {key}={meta.get('example', low)}")


def typed(cfg: DictConfig) -> DictConfig:
    """`cfg` merged into the schema: every typed key converted (YAML's '5e-5' strings, ...) or refused
    with the key, the value and what is expected; then the ranges. Hydra's own node is left out."""
    hydra = cfg.get("hydra") if "hydra" in cfg else None
    plain = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if hydra is not None else cfg
    try:
        out = OmegaConf.merge(OmegaConf.structured(RunConfig), plain)
    except OmegaConfBaseException as err:
        raise _schema_error(err) from None
    _check_ranges(out)
    OmegaConf.set_struct(out, True)
    return out
