"""The injector contract: how a fine-tuning method changes a backbone and what of it is saved.

A method is one module (here, or in any importable package: CONTRIBUTING.md) with
- its settings, a frozen dataclass subclassing `MethodSettings` whose `__post_init__` refuses bad
  values with a `UserError`. The fields are the keys of the method's config node: the config checks
  read their names and types from it (the class's signature is the settings'), so a typo or a wrong
  type is refused before anything loads, and `hparams()` is exactly these settings;
- its behaviour, an `Injector` subclass declared `class X(Injector, name="...", settings=...)`:
  `name` enters the registry (registry.py), the same name as its `conf/peft/<name>.yaml`.

The Lightning module, the checkpoints and the exports only talk to this interface, so adding a
method touches neither the training loop nor the checkpointing. Merging is defined once per kind:
`Injector.merge` refuses, `PlainModelInjector` (only `requires_grad` changes: the model is already a
plain one) returns the model, hf.py's `MergeableHFPeftInjector` folds peft's update in; `can_merge`
is whether a class has a merge of its own.
"""

from __future__ import annotations

import inspect
import json
import typing
from abc import ABC, abstractmethod
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ftlab.errors import UserError
from ftlab.models.structure import logical_numel
from ftlab.peft.registry import register

STATE_FILE = "ftlab_adapter.safetensors"
CONFIG_FILE = "ftlab_adapter.json"


@dataclass(frozen=True)
class ParamReport:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "percent": round(self.percent, 4)}


@dataclass(frozen=True)
class MethodSettings:
    """A method without settings; a method's own subclass this as a frozen dataclass."""

    def to_dict(self) -> dict:
        return asdict(self)


def settings_signature(settings: type[MethodSettings]) -> inspect.Signature:
    """The keyword-only signature of a settings dataclass, annotations resolved: what the config
    checks (ftlab/config/signature.py) read as the injector class's settings."""
    hints = typing.get_type_hints(settings)
    return inspect.Signature([
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                          default=f.default if f.default is not MISSING else inspect.Parameter.empty)
        for f in fields(settings)
    ])


class Injector(ABC):
    name: ClassVar[str] = ""  # the registered name: `peft=<name>`
    settings_class: ClassVar[type[MethodSettings]] = MethodSettings
    trains: ClassVar[bool] = True  # False for methods that only evaluate (zero-shot)

    def __init_subclass__(cls, name: str | None = None, settings: type[MethodSettings] | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if settings is not None:
            cls.settings_class = settings
        cls.__signature__ = settings_signature(cls.settings_class)
        if name is not None:
            cls.name = name
            register(name, cls)

    def __init__(self, **settings):
        if not type(self).name:
            raise TypeError(f"{type(self).__qualname__} is a base of methods, not one: declare a subclass with name=...")
        self.settings = self.settings_class(**settings)

    @property
    def can_merge(self) -> bool:
        return type(self).merge is not Injector.merge

    # ---- set-up ------------------------------------------------------------------------------
    def load_kwargs(self) -> dict:
        """Extra `from_pretrained` arguments the method needs (a quantization config, say)."""
        return {}

    @abstractmethod
    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        """Apply the method; mark its parameters and `new_parameters` (the fresh head) trainable.
        Raise `UserError` here, before training, when the method does not fit the model."""

    def hparams(self) -> dict:
        """The method's settings, stored beside its weights so a load can rebuild it."""
        return self.settings.to_dict()

    # ---- reports -----------------------------------------------------------------------------
    def trainable_report(self, model: nn.Module) -> ParamReport:
        params = {id(p): p for p in model.parameters()}.values()  # tied weights count once
        return ParamReport(
            trainable=sum(logical_numel(p) for p in params if p.requires_grad),
            total=sum(logical_numel(p) for p in params),
        )

    # ---- saving ------------------------------------------------------------------------------
    def state_to_save(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Only what training changes: the trainable parameters."""
        return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}

    def check_state(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Refuse weights of another model or method: unknown names, other shapes, trained ones missing."""
        own = model.state_dict()
        foreign = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
        lacking = sorted(set(self.state_to_save(model)) - set(state))
        if foreign or lacking:
            example = (foreign or lacking)[0]
            raise UserError(
                f"the saved weights do not fit this model and peft method (e.g. {example})",
                "load weights saved by a run with the same model and peft config",
            )

    def load(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Put a `state_to_save` dict back into an injected model."""
        self.check_state(model, state)
        model.load_state_dict(state, strict=False)

    def save_pretrained(self, model: nn.Module, directory: str | Path) -> Path:
        """Write what the method trains (not the backbone) to `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in self.state_to_save(model).items()}
        save_file(state, str(directory / STATE_FILE))
        (directory / CONFIG_FILE).write_text(json.dumps({"method": self.name, "hparams": self.hparams()}, indent=2))
        return directory

    def load_pretrained(self, model: nn.Module, directory: str | Path) -> nn.Module:
        """Load `save_pretrained` output into a model this injector has injected (`ftlab.load` and
        `ftlab predict` rebuild a saved adapter this way, ftlab/saved_model.py)."""
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            raise UserError(f"no {STATE_FILE} in {directory}", f"point at a folder written by peft={self.name}")
        saved = json.loads((Path(directory) / CONFIG_FILE).read_text())
        if saved.get("method") != self.name or saved.get("hparams") != json.loads(json.dumps(self.hparams())):
            raise UserError(f"{directory} holds peft={saved.get('method')} {saved.get('hparams')}, "
                            f"not peft={self.name} {self.hparams()}", "load it with the peft config it was saved with")
        self.load(model, load_file(str(path)))
        return model

    # ---- merging -----------------------------------------------------------------------------
    def merge(self, model: nn.Module) -> nn.Module:
        """Fold the method into plain base weights, giving a model transformers loads on its own.
        This one refuses: a method that merges overrides it (and so `can_merge` is true)."""
        raise UserError(f"peft={self.name} cannot be merged into the base weights",
                        "use the adapter-only weights (save_pretrained) with ftlab instead")

    def export(self, model: nn.Module, directory: str | Path, tokenizer=None) -> Path:
        """A folder `AutoModelForSequenceClassification.from_pretrained` loads with no ftlab installed."""
        merged = self.merge(model)
        directory = Path(directory)
        merged.save_pretrained(directory)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        return directory


class PlainModelInjector(Injector):
    """A method that only chooses what trains (full, head, BitFit, zero-shot): the injected model is
    the plain transformers model, so it is its own merge."""

    def merge(self, model: nn.Module) -> nn.Module:
        return model


def mark_trainable(model: nn.Module, trainable: set[str]) -> None:
    """requires_grad exactly for the named parameters."""
    for name, param in model.named_parameters():
        param.requires_grad = name in trainable
