"""Prefix tuning (Li & Liang 2021, P-tuning v2 for classifiers) and prompt tuning (Lester et al.
2021) through HF peft: trained virtual tokens in front of the text, the backbone untouched.

Virtual tokens are keys/values in every attention layer (prefix) or extra input embeddings
(prompt), not a weight delta, so neither method merges into a plain model. Whether a backbone
takes them depends on transformers' code for that architecture, not on anything in its config:
prefix tuning needs a model that accepts `past_key_values` (DistilBERT does not), and prompt
tuning hands the model embeddings instead of token ids, so a classifier that looks for the last
non-padding token id (Llama's) reads a padding position instead. `inject` therefore tries the
method on a tiny padded batch and refuses, with the reason, whatever fails, is ignored, or answers
differently with padding, rather than failing or silently training wrong later.

The head is trained and saved as peft's `modules_to_save`. Virtual tokens take positions too: with
absolute position embeddings (BERT: 512) the text may be at most that minus `num_virtual_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import PrefixTuningConfig, PromptLearningConfig, PromptTuningConfig, PromptTuningInit, TaskType
from torch import nn

from ftlab.errors import UserError
from ftlab.peft.base import MethodSettings
from ftlab.peft.hf import HFPeftInjector, head_modules
from ftlab.peft.probe import probe


@dataclass(frozen=True)
class PromptLearningSettings(MethodSettings):
    num_virtual_tokens: int = 20

    def __post_init__(self):
        if self.num_virtual_tokens < 1:
            raise UserError(f"peft.num_virtual_tokens={self.num_virtual_tokens} must be a positive integer",
                            "use e.g. peft.num_virtual_tokens=20")


class PromptLearningInjector(HFPeftInjector, settings=PromptLearningSettings):
    alternatives = ""  # the methods to suggest when this one does not fit

    @staticmethod
    def dims(model: nn.Module) -> dict:
        """peft reads the sizes from the config's dict, where some architectures store them under
        their own names (DistilBERT: dim, n_layers, n_heads); the config's aliases give them all."""
        config = model.config
        return {"token_dim": getattr(config, "hidden_size", None),
                "num_layers": getattr(config, "num_hidden_layers", None),
                "num_attention_heads": getattr(config, "num_attention_heads", None)}

    def refuse(self, model_type: str, reason: str) -> UserError:
        return UserError(f"peft={self.name} does not work with model type {model_type}: {reason}",
                         f"use {self.alternatives} with this model")

    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        model_type = model.config.model_type
        try:
            peft_model = super().inject(model, new_parameters)
            padded, alone, reached = probe(peft_model, peft_model.prompt_encoder.parameters())
        except UserError:
            raise
        except Exception as exc:  # any failure of the probe is a misfit of method and architecture
            raise self.refuse(model_type, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        if not reached:
            raise self.refuse(model_type, "the virtual tokens get no gradient (the model ignores them)")
        tol = 1e-3 if next(peft_model.parameters()).dtype == torch.float32 else 3e-2
        if (padded - alone).abs().max() > tol * max(1.0, alone.abs().max().item()):
            raise self.refuse(model_type, "an example's prediction changes with the padding of its batch "
                              "(the classifier reads a padding position)")
        return peft_model

    def prompt_config(self, model: nn.Module, new_parameters: set[str]) -> dict:
        return {"task_type": TaskType.SEQ_CLS, "num_virtual_tokens": self.settings.num_virtual_tokens,
                "modules_to_save": head_modules(model, new_parameters), **self.dims(model)}


class PrefixTuningInjector(PromptLearningInjector, name="prefix"):
    alternatives = "peft=lora, peft=dora, peft=ia3 or peft=prompt"

    def peft_config(self, model: nn.Module, new_parameters: set[str]) -> PromptLearningConfig:
        # no reparametrisation MLP: P-tuning v2 found it unnecessary for classification
        return PrefixTuningConfig(**self.prompt_config(model, new_parameters), prefix_projection=False)


class PromptTuningInjector(PromptLearningInjector, name="prompt"):
    alternatives = "peft=lora, peft=dora, peft=ia3 or peft=prefix"

    def peft_config(self, model: nn.Module, new_parameters: set[str]) -> PromptLearningConfig:
        # random init: initialising from a text needs a tokenizer, which the injector does not get
        return PromptTuningConfig(**self.prompt_config(model, new_parameters), prompt_tuning_init=PromptTuningInit.RANDOM)
