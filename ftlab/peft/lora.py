"""LoRA (and DoRA) through HF peft; the fresh classification head is trained and saved in full."""

from __future__ import annotations

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from torch import nn

from ftlab.errors import UserError
from ftlab.peft.base import Injector


def head_modules(model: nn.Module, new_parameters: set[str]) -> list[str]:
    """Module names to train in full: the head's top module, or the exact module inside the base model."""
    prefix = getattr(model, "base_model_prefix", "") + "."
    names = set()
    for param in new_parameters:
        module = param.rsplit(".", 1)[0]
        names.add(module if param.startswith(prefix) else module.split(".")[0])
    return sorted(names)


def linear_layer_names(model: nn.Module) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})


class LoraInjector(Injector):
    name = "lora"
    can_merge = True

    def __init__(
        self,
        r: int = 8,
        alpha: int = 16,
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
            raise UserError(f"peft.bias={bias!r} is not a valid choice", "use one of: none, all, lora_only")
        self.r, self.alpha, self.dropout, self.bias, self.use_dora = r, alpha, dropout, bias, use_dora
        self.target_modules = list(target_modules) if target_modules else None

    def peft_config(self, model: nn.Module, new_parameters: set[str]) -> LoraConfig:
        return LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,  # None: peft's default for this architecture
            bias=self.bias,
            use_dora=self.use_dora,
            modules_to_save=head_modules(model, new_parameters),
        )

    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        config = self.peft_config(model, new_parameters)
        try:
            return get_peft_model(model, config)
        except ValueError as exc:
            if "target_modules" not in str(exc).lower() and "target modules" not in str(exc).lower():
                raise
            raise UserError(
                f"peft.target_modules={self.target_modules} does not match this model's layers",
                f"choose from its linear layers: {', '.join(linear_layer_names(model))}",
            ) from None

    def merge(self, model: nn.Module) -> nn.Module:
        assert isinstance(model, PeftModel)
        return model.merge_and_unload()
