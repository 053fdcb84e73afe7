"""BitFit (Ben Zaken et al., 2022): only the bias terms and the head train.

Native rather than HF peft: it is only a choice of `requires_grad`, so the model stays a plain
transformers model that merges (and exports) as it is.
"""

from __future__ import annotations

from torch import nn

from ftlab.errors import UserError
from ftlab.peft.base import PlainModelInjector, mark_trainable


def bias_names(model: nn.Module) -> set[str]:
    """Every bias of the model: projections and LayerNorms alike, as in the paper."""
    return {n for n, _ in model.named_parameters() if n.rsplit(".", 1)[-1] == "bias"}


class BitFitInjector(PlainModelInjector, name="bitfit"):
    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        biases = bias_names(model)
        if not biases - set(new_parameters):
            # Llama-style decoders drop every bias: BitFit would silently become a linear probe
            model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
            raise UserError(f"BitFit needs bias terms; {model_type} has none: use lora/ia3",
                            "choose another method, e.g. peft=lora")
        mark_trainable(model, biases | set(new_parameters))
        return model
