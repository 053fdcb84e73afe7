"""Methods backed by HF peft share this base: peft injects, trains and saves in its own format
(`PeftModel.from_pretrained` loads ftlab's output), ftlab adds the head and the checks.

A method's settings are ftlab's (base.py: the config keys lora, dora and qlora share); `peft_config`
turns them into peft's `*Config` for the model at hand, where the defaults that depend on the
architecture (target modules) and the head (`modules_to_save`) are known. A check peft's config
makes itself is left to it (ia3.py).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

from peft import PeftConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from peft.utils import load_peft_weights
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


class HFPeftInjector(Injector):
    @abstractmethod
    def peft_config(self, model: nn.Module, new_parameters: set[str]) -> PeftConfig:
        """The peft config of the method for this model (head modules included in modules_to_save)."""

    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        config = self.peft_config(model, new_parameters)
        try:
            return get_peft_model(model, config)
        except ValueError as exc:
            if "target" not in str(exc).lower():
                raise
            targets = getattr(config, "target_modules", None)
            model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
            raise UserError(
                f"peft.target_modules={sorted(targets)} does not match this model's layers" if targets
                else f"peft has no default target_modules for model type {model_type}",
                f"set peft.target_modules to some of its linear layers: {', '.join(linear_layer_names(model))}",
            ) from None

    def save_pretrained(self, model: nn.Module, directory: str | Path) -> Path:
        assert isinstance(model, PeftModel)
        model.save_pretrained(str(directory))
        return Path(directory)

    def load_pretrained(self, model: nn.Module, directory: str | Path) -> nn.Module:
        if not (Path(directory) / "adapter_config.json").is_file():
            raise UserError(f"no adapter_config.json in {directory}", f"point at a folder written by peft={self.name}")
        result = set_peft_model_state_dict(model, load_peft_weights(str(directory)))
        # prompt learning's virtual tokens are loaded into the prompt encoder, outside the state dict
        unexpected = [k for k in result.unexpected_keys if k != "prompt_embeddings"]
        if unexpected:
            raise UserError(f"the adapter in {directory} does not fit this model (e.g. {unexpected[0]})",
                            "load an adapter saved with the same model and peft config")
        return model


class MergeableHFPeftInjector(HFPeftInjector):
    """The peft methods whose update folds into the weights it changes (LoRA, DoRA, (IA)^3)."""

    def merge(self, model: nn.Module) -> nn.Module:
        assert isinstance(model, PeftModel)
        return model.merge_and_unload()
