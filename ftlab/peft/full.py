"""Full fine-tuning: every weight trains (the studies' reference column)."""

from __future__ import annotations

from torch import nn

from ftlab.peft.base import Injector


class FullFineTuning(Injector):
    name = "full"
    can_merge = True

    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        for param in model.parameters():
            param.requires_grad = True
        return model

    def merge(self, model: nn.Module) -> nn.Module:
        return model
