"""LoRA and DoRA (weight-decomposed LoRA) through HF peft.

DoRA is its own method (`peft=dora`, its own class and name) with LoRA's settings: a flag of LoRA's
that renamed the method would let the name of a run and the method it trained drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from peft import LoraConfig, TaskType
from torch import nn

from ftlab.errors import InvalidChoice, UserError
from ftlab.peft.base import MethodSettings
from ftlab.peft.hf import MergeableHFPeftInjector, head_modules

# query/value projections for architectures peft has no LoRA default for (the rest: peft's table)
DEFAULT_TARGETS = {"distilbert": ["q_lin", "v_lin"], "mpnet": ["q", "v"]}
BIASES = ("none", "all", "lora_only")


@dataclass(frozen=True)
class LoraSettings(MethodSettings):
    r: int = 8
    alpha: float = 16
    dropout: float = 0.1
    target_modules: list[str] | None = None  # None (or empty): peft's default for the architecture
    bias: str = "none"

    def __post_init__(self):
        # peft's LoraConfig takes any of these and fails (or trains nothing) later
        if self.r < 1:
            raise UserError(f"peft.r={self.r} must be a positive integer", "use e.g. peft.r=8")
        if self.alpha <= 0:
            raise UserError(f"peft.alpha={self.alpha} must be positive", "use e.g. peft.alpha=16")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"peft.dropout={self.dropout} is out of range",
                            "use a probability in [0, 1), e.g. peft.dropout=0.1")
        if self.bias not in BIASES:
            raise InvalidChoice("peft.bias", self.bias, BIASES)


class LoraInjector(MergeableHFPeftInjector, name="lora", settings=LoraSettings):
    use_dora: ClassVar[bool] = False

    def peft_config(self, model: nn.Module, new_parameters: set[str]) -> LoraConfig:
        s = self.settings
        return LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=s.r,
            lora_alpha=s.alpha,
            lora_dropout=s.dropout,
            target_modules=list(s.target_modules or []) or DEFAULT_TARGETS.get(model.config.model_type),
            bias=s.bias,
            use_dora=self.use_dora,
            modules_to_save=head_modules(model, new_parameters),
        )


class DoraInjector(LoraInjector, name="dora"):
    use_dora = True
