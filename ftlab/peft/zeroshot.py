"""No training: the model is tested as built, freshly initialised head included.

It is the baseline column of the studies (what a method gains is measured against it). `trains =
False` makes the run skip `trainer.fit`, so no optimizer is ever configured for zero parameters.
"""

from __future__ import annotations

from torch import nn

from ftlab.peft.base import PlainModelInjector, mark_trainable


class ZeroShot(PlainModelInjector, name="zeroshot"):
    trains = False

    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        mark_trainable(model, set())
        return model
