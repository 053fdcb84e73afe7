"""What ftlab reads off a built model's structure, by architecture rather than by module names.

Three places need the transformer layer stack: bottleneck adapters (which Linears to adapt),
FSDP (which class to wrap one unit per layer) and the memory estimate (which layers the backward
crosses). They must agree on it, so it is found here once, along with the hidden size.

What is 4-bit (QLoRA) is defined here too, without importing bitsandbytes or peft (the memory
report of every run asks): before the build, what the injector's `from_pretrained` arguments ask
for; after it, a weight that carries a bitsandbytes `quant_state`.
"""

from __future__ import annotations

import torch
from torch import nn

from ftlab.errors import UserError

# config attributes that hold the hidden size, by architecture family (BERT & Llama, T5 & BART,
# DistilBERT, GPT-2); transformers aliases most of them, so their order rarely matters
HIDDEN_SIZE_KEYS = ("hidden_size", "d_model", "dim", "n_embd")


def find_transformer_blocks(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """(name, stack) of the repeated layers, or None: the longest ModuleList of one block class
    holding Linear layers (ties: the one with more parameters), which is the encoder / decoder
    stack in every family. A list of bare Linears (an attention's heads) is not a stack."""
    best, best_key = None, (0, 0)
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(block) for block in module}) != 1 or isinstance(module[0], nn.Linear):
            continue
        if not any(isinstance(m, nn.Linear) for m in module[0].modules()):
            continue
        key = (len(module), sum(p.numel() for p in module.parameters()))
        if key > best_key:
            best, best_key = (name, module), key
    return best


def transformer_blocks(model: nn.Module, fix: str) -> tuple[str, nn.ModuleList]:
    """`find_transformer_blocks`, or a UserError whose fix (`fix`) is the caller's way around it."""
    found = find_transformer_blocks(model)
    if found is None:
        raise UserError(f"{type(model).__name__}: no repeated transformer blocks found (a ModuleList of layers)", fix)
    return found


def block_class(model: nn.Module) -> type[nn.Module] | None:
    """The class of the model's transformer layer (FSDP's unit of wrapping), or None."""
    found = find_transformer_blocks(model)
    return type(found[1][0]) if found else None


def hidden_size(config) -> int | None:
    """The width of the residual stream from a model config (None when no known key holds an int)."""
    return next((getattr(config, k) for k in HIDDEN_SIZE_KEYS if isinstance(getattr(config, k, None), int)), None)


def is_4bit(p: torch.Tensor) -> bool:
    """A bitsandbytes 4-bit weight: packed two values a byte, its shape and scales in `quant_state`."""
    return getattr(p, "quant_state", None) is not None


def logical_numel(p: torch.Tensor) -> int:
    """The number of weights `p` stands for: a 4-bit weight's packed storage holds half as many values."""
    return int(torch.Size(p.quant_state.shape).numel()) if is_4bit(p) else p.numel()


def weights_4bit(load_kwargs: dict) -> dict | None:
    """{"double_quant": bool} when these `from_pretrained` arguments (an injector's `load_kwargs()`)
    load the backbone's Linears in 4 bits, else None."""
    config = load_kwargs.get("quantization_config")
    if config is None or not getattr(config, "load_in_4bit", False):
        return None
    return {"double_quant": bool(getattr(config, "bnb_4bit_use_double_quant", False))}
