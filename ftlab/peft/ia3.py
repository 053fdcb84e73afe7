"""(IA)^3 (Liu et al. 2022): learned per-channel scales on keys, values and the feed-forward
activations, through HF peft.

One vector per scaled layer is an order of magnitude fewer weights than LoRA, and a scale folds
exactly into the weight it multiplies, so the method merges into a plain model.
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import IA3Config, TaskType
from peft.utils import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as PEFT_FEEDFORWARD
from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as PEFT_TARGETS
from peft.utils import ModulesToSaveWrapper
from torch import nn

from ftlab.errors import UserError
from ftlab.peft.base import MethodSettings
from ftlab.peft.hf import MergeableHFPeftInjector, head_modules, linear_layer_names

# peft 0.21 has no (IA)^3 default for these architectures; the same choice as its BERT default
# (keys, values, and the input of the second feed-forward layer, which (IA)^3 scales)
FALLBACK = {"distilbert": (["k_lin", "v_lin", "lin2"], ["lin2"])}


@dataclass(frozen=True)
class IA3Settings(MethodSettings):
    target_modules: list[str] | None = None  # None (or empty): peft's default for the architecture
    feedforward_modules: list[str] | None = None  # None: peft's default among the targets

    def __post_init__(self):
        if not self.target_modules and self.feedforward_modules is not None:
            raise UserError("peft.feedforward_modules is set but peft.target_modules is not",
                            "set both (feed-forward modules are a subset of the targets) or neither")
        if self.target_modules and self.feedforward_modules is not None:
            try:  # peft's config checks that the feed-forward modules are among the targets
                IA3Config(target_modules=list(self.target_modules), feedforward_modules=list(self.feedforward_modules))
            except ValueError as exc:
                raise UserError(f"peft.feedforward_modules={list(self.feedforward_modules)}: {exc} "
                                f"(peft.target_modules={list(self.target_modules)})",
                                "every feed-forward module must also be in peft.target_modules") from None


class IA3Injector(MergeableHFPeftInjector, name="ia3", settings=IA3Settings):
    def _modules(self, model: nn.Module) -> tuple[list[str], list[str]]:
        """Targets and feed-forward modules: the user's, else peft's default for the architecture.
        Feed-forward layers are scaled on their input, the others on their output, so a wrong split
        would train, but not (IA)^3: the feed-forward default follows the targets the user chose."""
        model_type = model.config.model_type
        default_targets = PEFT_TARGETS.get(model_type) or FALLBACK.get(model_type, (None, None))[0]
        default_ff = PEFT_FEEDFORWARD.get(model_type) or FALLBACK.get(model_type, (None, None))[1]
        targets = self.settings.target_modules or default_targets
        if targets is None:
            raise UserError(f"peft has no default (IA)^3 layers for model type {model_type}",
                            "set peft.target_modules (and peft.feedforward_modules among them) from its linear "
                            f"layers: {', '.join(linear_layer_names(model))}")
        if self.settings.feedforward_modules is not None:
            return list(targets), list(self.settings.feedforward_modules)
        return list(targets), [m for m in default_ff or [] if m in targets]

    def peft_config(self, model: nn.Module, new_parameters: set[str]) -> IA3Config:
        targets, feedforward = self._modules(model)
        return IA3Config(
            task_type=TaskType.SEQ_CLS,
            target_modules=targets,
            feedforward_modules=feedforward,
            modules_to_save=head_modules(model, new_parameters),
        )

    def merge(self, model: nn.Module) -> nn.Module:
        """peft 0.21's (IA)^3 unload copies `.weight` onto each unwrapped head, which fails for a head
        of several layers (RoBERTa's): put the trained head copies in place first."""
        for name, module in list(model.named_modules()):
            if isinstance(module, ModulesToSaveWrapper):
                parent, _, attr = name.rpartition(".")
                trained = module.unload_and_optionally_merge_module(merge=False, safe_merge=False, adapter_names=None)
                setattr(model.get_submodule(parent), attr, trained)
        return super().merge(model)
