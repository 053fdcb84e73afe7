"""Bottleneck adapters (Houlsby: after attention and FFN outputs; Pfeiffer: after the FFN output only).

HF peft has no bottleneck adapters and the `adapters` library does not support transformers 5, so
they are native. Each adapter hangs off an existing `nn.Linear` as a child module plus a forward
hook, not as a wrapper: every backbone parameter keeps its name (checkpoints and `check_state`
stay simple) and any Linear subclass (quantized ones too) is adapted alike. The places are found by
architecture, not by one model's module names, so BERT, RoBERTa, DistilBERT and Llama-style
decoders share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ftlab.errors import InvalidChoice, UserError
from ftlab.models.structure import hidden_size, transformer_blocks
from ftlab.peft.base import Injector, MethodSettings, mark_trainable

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU}
ADAPTER = "adapter"  # child name under the adapted Linear: `...output.dense.adapter.down.weight`


class BottleneckAdapter(nn.Module):
    """h + up(act(down(h))), with `up` zero-initialised: the injected model starts out as the
    original one exactly, so training departs from the pretrained function, not from noise."""

    def __init__(self, hidden: int, bottleneck: int, non_linearity: str, dtype=None, device=None):
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck, dtype=dtype, device=device)
        self.act = ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(bottleneck, hidden, dtype=dtype, device=device)
        if not self.down.weight.is_meta:  # meta: parameter counting only
            nn.init.normal_(self.down.weight, std=1e-2)  # Houlsby et al.'s near-zero init
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        delta = self.up(self.act(self.down(h.to(self.down.weight.dtype))))
        return h + delta.to(h.dtype)


def _apply_adapter(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
    # module-level (not a lambda) so an adapted model still pickles and deep-copies
    return getattr(module, ADAPTER)(output)


def block_projections(block: nn.Module, hidden: int) -> dict[str, tuple[str, nn.Linear] | None]:
    """In definition order, the FFN output is the last Linear from an intermediate size to `hidden`;
    walking back from it past the FFN input (a Linear from `hidden` to that intermediate size, or
    twice it when gate and up are fused), the first Linear ending in `hidden` is the attention
    output. Only the output side has to be `hidden`: attention with heads * head_dim != hidden
    (Gemma) is covered, and q/k/v projections of any width are never mistaken for it."""
    linears = [(n, m) for n, m in block.named_modules() if isinstance(m, nn.Linear)]
    found: dict[str, tuple[str, nn.Linear] | None] = {"attention": None, "ffn": None}
    ffn_out = next((i for i in reversed(range(len(linears))) if linears[i][1].out_features == hidden), None)
    if ffn_out is None or linears[ffn_out][1].in_features == hidden:
        return found
    found["ffn"] = linears[ffn_out]
    intermediate = linears[ffn_out][1].in_features
    past_ffn_input = False
    for name, linear in reversed(linears[:ffn_out]):
        if past_ffn_input and linear.out_features == hidden:
            found["attention"] = (name, linear)
            break
        past_ffn_input |= linear.in_features == hidden and linear.out_features in (intermediate, 2 * intermediate)
    return found


@dataclass(frozen=True)
class AdapterSettings(MethodSettings):
    reduction_factor: int = 16  # bottleneck = hidden size // reduction_factor
    non_linearity: str = "relu"

    def __post_init__(self):
        if self.reduction_factor < 1:
            raise UserError(f"peft.reduction_factor={self.reduction_factor} must be a positive integer",
                            "use e.g. peft.reduction_factor=16 (bottleneck = hidden size // 16)")
        if self.non_linearity not in ACTIVATIONS:
            raise InvalidChoice("peft.non_linearity", self.non_linearity, tuple(ACTIVATIONS))


class BottleneckAdapterInjector(Injector, settings=AdapterSettings):
    """Where adapters go (`positions`) is the only difference between Houlsby and Pfeiffer. The
    adapter is non-linear, so it cannot fold into the projection's weights: no merge."""

    positions: tuple[str, ...] = ()

    def bottleneck(self, hidden: int) -> int:
        factor = self.settings.reduction_factor
        if factor > hidden:
            raise UserError(f"peft.reduction_factor={factor} is larger than the hidden size {hidden}",
                            f"use at most {hidden}, e.g. peft.reduction_factor={min(16, hidden)}")
        return hidden // factor

    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        hidden = hidden_size(getattr(model, "config", None))
        if hidden is None:
            raise UserError(f"cannot tell the hidden size of {type(model).__name__}", "use peft=lora on this model")
        size = self.bottleneck(hidden)
        stack, blocks = transformer_blocks(model, "bottleneck adapters need an encoder/decoder stack; use peft=lora")
        targets = []
        for i, block in enumerate(blocks):
            found = block_projections(block, hidden)
            for position in self.positions:
                if found[position] is None:
                    what = {"attention": "attention output", "ffn": "feed-forward output"}[position] + " projection"
                    raise UserError(f"peft={self.name}: no {what} (a Linear to hidden size {hidden}) found in "
                                    f"{stack}.{i} ({type(block).__name__})", "use peft=lora on this model")
                targets.append(found[position][1])
        if any(hasattr(linear, ADAPTER) for linear in targets):
            raise UserError(f"peft={self.name}: this model already has adapters", "inject into a freshly built model")
        adapter_params = set()
        for linear in targets:
            weight = linear.weight
            dtype = weight.dtype if weight.is_floating_point() else torch.float32
            adapter = BottleneckAdapter(hidden, size, self.settings.non_linearity, dtype, weight.device)
            linear.add_module(ADAPTER, adapter)
            linear.register_forward_hook(_apply_adapter)
            adapter_params |= {id(p) for p in adapter.parameters()}
        mark_trainable(model, {n for n, p in model.named_parameters() if id(p) in adapter_params} | set(new_parameters))
        return model


class HoulsbyInjector(BottleneckAdapterInjector, name="houlsby"):
    positions = ("attention", "ffn")


class PfeifferInjector(BottleneckAdapterInjector, name="pfeiffer"):
    positions = ("ffn",)
