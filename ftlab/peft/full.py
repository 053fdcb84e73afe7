"""Full fine-tuning: every weight trains (the studies' reference column)."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from transformers import PreTrainedModel

from ftlab.peft.base import PlainModelInjector


class FullFineTuning(PlainModelInjector, name="full"):
    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        for param in model.parameters():
            param.requires_grad = True
        return model

    def save_pretrained(self, model: PreTrainedModel, directory: str | Path) -> Path:
        """Everything trains, so the saved weights are the whole model: save it as transformers does."""
        return self.export(model, directory)

    def load_pretrained(self, model: PreTrainedModel, directory: str | Path) -> nn.Module:
        from transformers import AutoModelForSequenceClassification

        trained = AutoModelForSequenceClassification.from_pretrained(directory)
        self.load(model, dict(trained.named_parameters()))
        return model
