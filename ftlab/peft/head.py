"""Linear probe: the backbone stays frozen and only the freshly initialised head trains.

It measures how much of a task the pretrained features already carry, the lower reference of the
studies between zero-shot and full fine-tuning.
"""

from __future__ import annotations

from torch import nn

from ftlab.errors import UserError
from ftlab.peft.base import PlainModelInjector, mark_trainable


class HeadOnly(PlainModelInjector, name="head"):
    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        if not new_parameters:
            # a checkpoint that already holds a classifier for these labels: nothing here is "the head"
            raise UserError(
                "peft=head trains the freshly initialised head, and this model's checkpoint already has one",
                "use peft=full or peft=lora, or a backbone without a classification head",
            )
        mark_trainable(model, set(new_parameters))
        return model
