"""QLoRA (Dettmers et al. 2023): the frozen backbone stored in 4-bit NF4 with double quantisation
(bitsandbytes), LoRA adapters trained on top of it in a higher compute dtype.

The head is fresh, so it must stay a float layer: a 4-bit layer whose weights are not in the
checkpoint is never quantised and bitsandbytes crashes on its first forward (on CPU it does not
refuse the load). Which modules form the head is architecture-specific and the load happens before
the injector sees the model, so the loader skips the names transformers' classification heads use
(`skip_modules`), and `inject` checks the result and runs a probe forward/backward before training.

Compute dtype (`compute_dtype: null`): bfloat16 on a CUDA GPU, as in the paper; float32 on CPU,
where bitsandbytes dequantises to it and every CPU computes it at full speed (bfloat16 trains too,
but is emulated on CPUs without native bf16 and saves no memory, the weights being 4-bit anyway).

Merging: the 4-bit weights are dequantised and the LoRA update added in float, giving a plain float
model. Merging inside 4 bits (peft's merge_and_unload) would requantise W + BA and lose most of the
small update to rounding, so that is not offered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch
from peft import prepare_model_for_kbit_training
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import BitsAndBytesConfig

from ftlab.errors import UserError
from ftlab.models.structure import is_4bit
from ftlab.peft.hf import head_modules
from ftlab.peft.lora import LoraInjector, LoraSettings
from ftlab.peft.probe import probe
from ftlab.precision import emulated_bf16_warning

# module names of transformers' sequence-classification heads (DistilBERT: pre_classifier +
# classifier; Llama & co: score; BART/T5: classification_head) and BERT's pooler, which a checkpoint
# may lack and which is too small to be worth quantising; matched as suffixes of module names
HEAD_MODULES = ["classifier", "pre_classifier", "score", "classification_head", "pooler.dense"]
log = logging.getLogger(__name__)


def require_bitsandbytes():
    try:
        import bitsandbytes
    except Exception as exc:  # ImportError, or a broken native library
        raise UserError(f"peft=qlora needs bitsandbytes, which cannot be imported ({type(exc).__name__}: {exc})",
                        "pip install 'ftlab[quant]'  (or: pip install bitsandbytes==0.50.2)") from None
    return bitsandbytes


@dataclass(frozen=True)
class QLoraSettings(LoraSettings):
    compute_dtype: Literal["float32", "bfloat16", "float16"] | None = None  # None: see the module docstring
    double_quant: bool = True
    skip_modules: list[str] | None = None  # modules kept in float; None: HEAD_MODULES


class QLoraInjector(LoraInjector, name="qlora", settings=QLoraSettings):
    """Merges into float weights (see the module docstring), not through peft's merge_and_unload."""

    def __init__(self, **settings):
        require_bitsandbytes()  # before the model is loaded
        super().__init__(**settings)

    @property
    def skip_modules(self) -> list[str]:
        skip = self.settings.skip_modules
        return list(skip) if skip is not None else list(HEAD_MODULES)

    def resolved_compute_dtype(self) -> torch.dtype:
        if self.settings.compute_dtype:
            return getattr(torch, self.settings.compute_dtype)
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32

    def load_kwargs(self) -> dict:
        # a chosen bfloat16 (the study 004 preset's) is kept; where the CPU emulates it, with a warning
        if self.settings.compute_dtype == "bfloat16" and not torch.cuda.is_available():
            warning = emulated_bf16_warning("peft.compute_dtype=bfloat16", "cpu", "peft.compute_dtype=null picks float32")
            if warning:
                log.warning(warning)
        return {"quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=self.settings.double_quant,
            bnb_4bit_compute_dtype=self.resolved_compute_dtype(),
            llm_int8_skip_modules=self.skip_modules,
        )}

    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        bnb = require_bitsandbytes()
        if not any(is_4bit(p) for p in model.parameters()):
            raise UserError("peft=qlora got a model that is not loaded in 4 bits",
                            "build the backbone with the injector's load_kwargs() (ftlab's run does)")
        for name in head_modules(model, new_parameters):  # by class: a fresh head never gets a quant_state
            if any(isinstance(m, bnb.nn.Linear4bit) for m in model.get_submodule(name).modules()):
                raise UserError(f"the new head layer {name!r} was loaded in 4 bits, where it can neither run nor train",
                                f"add its name to peft.skip_modules (now {self.skip_modules})")
        for module in model.modules():
            if isinstance(module, bnb.nn.Linear4bit):
                # bitsandbytes 0.50 repacks a weight for AVX512-BF16 CPUs on its first no-grad
                # eval forward and never unpacks it for training: after the first validation, the
                # frozen layers would pass no gradient (or fail on their bias). Keep one layout.
                module.support_avx512bf16_for_cpu = False
        # activation checkpointing is the backbone's (model.gradient_checkpointing, which conf/peft/qlora.yaml
        # recommends): switched on when it was built, before this
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        peft_model = super().inject(model, new_parameters)
        try:
            logits, _, _ = probe(peft_model)
        except Exception as exc:
            raise UserError(f"the 4-bit {model.config.model_type} model fails a first forward/backward "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})",
                            "use peft=lora (no quantisation), or another model") from exc
        if not torch.isfinite(logits).all():
            raise UserError(f"the 4-bit {model.config.model_type} model gives non-finite logits",
                            "try peft.compute_dtype=float32")
        return peft_model

    def merge(self, model: nn.Module) -> nn.Module:
        """Dequantise, then add each LoRA update in float (exactly what the 4-bit forward computed)."""
        bnb = require_bitsandbytes()
        merged = {}
        for name, module in model.base_model.model.named_modules():
            base = module.get_base_layer() if isinstance(module, LoraLayer) else None
            if isinstance(base, bnb.nn.Linear4bit):
                weight = bnb.functional.dequantize_4bit(base.weight.data, base.weight.quant_state).float()
                for adapter in module.active_adapters:
                    weight += module.get_delta_weight(adapter).float()
                merged[name] = weight
        plain = model.unload()  # LoRA layers out, trained head copies in place of the originals
        dtype = getattr(plain.config, "dtype", None)
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        dtype = dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else torch.float32
        plain.dequantize(dtype=dtype)  # every Linear4bit back to nn.Linear; drops the quantization config
        for name, weight in merged.items():
            plain.get_submodule(name).weight.data = weight.to(dtype)
        return plain.to(dtype)
