"""Instantiate `_target_` configs with the checks Hydra leaves to the target.

Hydra composes any key and any string; a typo or a wrong type would otherwise surface deep inside
training as a TypeError. Here every key is checked against the target's signature and every value
against its annotation before anything is built, so the user gets the key, the expected type and
the valid choices. YAML's `5e-5` (a string in YAML 1.1) is read as the float it means.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Literal, Union

from hydra.errors import InstantiationException
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from ftlab.errors import InvalidChoice, UserError, user_error_in

_MISSING = object()


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    return {type(None): "null", int: "an integer", float: "a number", bool: "true/false", str: "a string",
            list: "a list", dict: "a mapping"}.get(hint, getattr(hint, "__name__", str(hint)))


def _literal_choices(hint) -> list | None:
    """All allowed values when `hint` is a Literal or a Union of Literals (and None), else None."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    choices: dict[str, None] = {}
    for arg in args:
        if typing.get_origin(arg) is Literal:
            choices.update((str(a), None) for a in typing.get_args(arg))
        elif arg is type(None):
            choices["null"] = None
        else:
            return None
    return list(choices)


def _coerce(value: Any, hint) -> Any:
    """Return `value` as `hint` accepts it, or `_MISSING` if it cannot be; unknown hints pass."""
    origin = typing.get_origin(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return value
    if origin is Literal:
        return value if value in typing.get_args(hint) else _MISSING
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(hint):
            out = _coerce(value, arg)
            if out is not _MISSING:
                return out
        return _MISSING
    if hint is type(None):
        return None if value is None else _MISSING
    if hint is bool:
        return value if isinstance(value, bool) else _MISSING
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISSING
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return _MISSING
        return _MISSING
    if hint is str:
        return value if isinstance(value, str) else _MISSING
    if origin in (list, tuple) or hint in (list, tuple):
        return value if isinstance(value, (list, tuple)) else _MISSING
    if origin is dict or hint is dict:
        return value if isinstance(value, dict) else _MISSING
    if isinstance(hint, type):  # a class (Tensor, Path, ...): a config value must already be one
        return value if isinstance(value, hint) else _MISSING
    return value  # typing constructs (Callable, Iterable, ...): left to the target


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _signature(fn) -> tuple[dict, dict, bool]:
    """(name -> annotation, type hints, accepts any keyword) of a callable; for a class, the
    `__init__` chain: a subclass passing **kwargs up accepts what its bases accept, no more."""
    declared = getattr(fn, "__signature__", None) if inspect.isclass(fn) else None
    if isinstance(declared, inspect.Signature):  # a class that states its settings (an injector: its settings dataclass)
        params = {n: p.annotation for n, p in declared.parameters.items() if p.kind not in _VARIADIC}
        return params, dict(params), any(p.kind is p.VAR_KEYWORD for p in declared.parameters.values())
    params: dict = {}
    hints: dict = {}
    functions = [k.__dict__["__init__"] for k in fn.__mro__ if "__init__" in k.__dict__] if inspect.isclass(fn) else [fn]
    for function in functions:
        try:
            sig = inspect.signature(function)
        except (TypeError, ValueError):
            return params, hints, True
        for name, p in sig.parameters.items():
            if p.kind not in _VARIADIC and name != "self":
                params.setdefault(name, p.annotation)
        try:
            hints = {**typing.get_type_hints(function), **hints}
        except Exception:
            pass
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return params, hints, False
    return params, hints, True


def check_node(key: str, node: dict, provided: set[str]) -> dict:
    """Check keys and value types of one `_target_` node against the target's signature."""
    target = node["_target_"]
    try:
        fn = get_method(target)
    except Exception as exc:
        refused = user_error_in(exc)
        if refused is not None:  # the module refused something itself (a method name taken twice)
            raise refused from None
        raise UserError(f"{key}._target_={target!r} cannot be imported", "check the module and class name") from None
    params, hints, takes_any = _signature(fn)
    out = dict(node)
    for name, value in node.items():
        if name.startswith("_") and name.endswith("_"):
            continue
        if name not in params:
            if takes_any:
                continue
            valid = [p for p in params if p not in provided]
            raise UserError(f"{key}.{name} is not a setting of {target}", f"valid settings: {', '.join(valid)}")
        hint = hints.get(name, params[name])
        if isinstance(value, dict) and "_target_" in value:
            out[name] = check_node(f"{key}.{name}", value, set())
            continue
        coerced = _coerce(value, hint)
        if coerced is _MISSING:
            choices = _literal_choices(hint)
            if choices:
                raise InvalidChoice(f"{key}.{name}", value, choices)
            raise UserError(f"{key}.{name}={value!r}: expected {_describe(hint)}",
                            f"set {key}.{name} to {_describe(hint)}")
        out[name] = coerced
    return out


def build(cfg: DictConfig, key: str, **provided):
    """Instantiate `cfg[key]` (a `_target_` node) after checking it; `provided` are runtime objects."""
    node = OmegaConf.to_container(cfg[key], resolve=True)
    node = check_node(key, node, set(provided))
    try:
        return instantiate(node, **provided)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if not node["_target_"].startswith("ftlab.") and isinstance(cause, (ValueError, TypeError, ImportError)) \
                or type(cause).__name__ == "MisconfigurationException":
            # a library refusing a setting (Lightning, torch): its message names the setting
            raise UserError(f"{key}: {cause}", f"check the {key}.* settings (python -m ftlab --cfg job shows them)") from None
        raise


def build_each(cfg: DictConfig, key: str) -> list:
    """Instantiate every `_target_` node under the mapping `cfg[key]` (callbacks, loggers)."""
    node = cfg.get(key)
    if not node:
        return []
    return [build(node, name) for name, sub in node.items() if isinstance(sub, DictConfig) and "_target_" in sub]
