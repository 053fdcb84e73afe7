"""LoRA and DoRA (weight-decomposed LoRA) through HF peft."""

from __future__ import annotations

from peft import LoraConfig, TaskType
from torch import nn

from ftlab.errors import InvalidChoice, UserError
from ftlab.peft.hf import HFPeftInjector, head_modules

# query/value projections for architectures peft has no LoRA default for (the rest: peft's table)
DEFAULT_TARGETS = {"distilbert": ["q_lin", "v_lin"]}


class LoraInjector(HFPeftInjector):
    name = "lora"
    can_merge = True

    def __init__(
        self,
        r: int = 8,
        alpha: float = 16,
        dropout: float = 0.1,
        target_modules: list[str] | None = None,
        bias: str = "none",
        use_dora: bool = False,
    ):
        if r < 1:
            raise UserError(f"peft.r={r} must be a positive integer", "use e.g. peft.r=8")
        if alpha <= 0:
            raise UserError(f"peft.alpha={alpha} must be positive", "use e.g. peft.alpha=16")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"peft.dropout={dropout} is out of range", "use a probability in [0, 1), e.g. peft.dropout=0.1")
        if bias not in ("none", "all", "lora_only"):
            raise InvalidChoice("peft.bias", bias, ("none", "all", "lora_only"))
        self.r, self.alpha, self.dropout, self.bias, self.use_dora = r, alpha, dropout, bias, use_dora
        self.target_modules = list(target_modules) if target_modules else None
        if use_dora:
            self.name = "dora"

    def peft_config(self, model: nn.Module, new_parameters: set[str]) -> LoraConfig:
        return LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules or DEFAULT_TARGETS.get(model.config.model_type),
            bias=self.bias,
            use_dora=self.use_dora,
            modules_to_save=head_modules(model, new_parameters),
        )
