"""The injector contract: how a fine-tuning method changes a backbone and what of it is saved.

Each method is one small module with one `Injector` subclass; `conf/peft/<name>.yaml` names it with
`_target_`. The Lightning module only talks to this interface, so adding a method touches neither
the training loop nor the checkpointing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ftlab.errors import UserError


@dataclass(frozen=True)
class ParamReport:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "percent": round(self.percent, 4)}


class Injector(ABC):
    name: str = ""
    can_merge: bool = False
    trains: bool = True  # False for methods that only evaluate (zero-shot)

    @abstractmethod
    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        """Apply the method; mark its parameters and `new_parameters` (the fresh head) trainable."""

    def trainable_report(self, model: nn.Module) -> ParamReport:
        params = {id(p): p for p in model.parameters()}.values()  # tied weights count once
        return ParamReport(
            trainable=sum(_numel(p) for p in params if p.requires_grad),
            total=sum(_numel(p) for p in params),
        )

    def state_to_save(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Only what training changes: the trainable parameters (plus buffers of trainable modules)."""
        return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}

    def load(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        result = model.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise UserError(
                f"checkpoint has {len(result.unexpected_keys)} weights this model lacks "
                f"(e.g. {result.unexpected_keys[0]})",
                "load a checkpoint saved with the same model and peft method",
            )
        expected = set(self.state_to_save(model))
        lacking = sorted(expected - set(state))
        if lacking:
            raise UserError(
                f"checkpoint lacks {len(lacking)} trained weights (e.g. {lacking[0]})",
                "load a checkpoint saved with the same model and peft method",
            )

    def merge(self, model: nn.Module) -> nn.Module:
        """Fold the method into plain base weights, giving a model transformers loads on its own."""
        raise UserError(f"peft={self.name} cannot be merged into the base weights",
                        "export the adapter-only checkpoint instead")

    def export(self, model: nn.Module, directory: str | Path) -> Path:
        """Write a folder that `AutoModelForSequenceClassification.from_pretrained` loads."""
        merged = self.merge(model)
        directory = Path(directory)
        merged.save_pretrained(directory)
        return directory


def _numel(p: torch.Tensor) -> int:
    # 4-bit bitsandbytes params store two values per byte; count the logical weights
    quant = getattr(p, "quant_state", None)
    return int(torch.Size(quant.shape).numel()) if quant is not None else p.numel()


def freeze_all_but(model: nn.Module, trainable: set[str]) -> None:
    for name, param in model.named_parameters():
        param.requires_grad = name in trainable
