"""What ftlab adds to Lightning's multi-process strategies (trainer=ddp, trainer=fsdp).

DDP needs nothing more than the self-sharding batch sampler (ftlab/data/batching.py) and rank-0
writes (ftlab/run.py). FSDP shards best one transformer layer per unit: without a wrap policy
Lightning makes the whole model one unit, whose full parameters every process gathers at once.
"""

from __future__ import annotations

from lightning.pytorch.strategies import FSDPStrategy
from torch import nn


def transformer_layer_class(model: nn.Module) -> type[nn.Module] | None:
    """The class of the model's repeated block: the elements of its largest ModuleList."""
    stacks = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 1]
    if not stacks:
        return None
    largest = max(stacks, key=lambda m: sum(p.numel() for p in m.parameters()))
    return type(largest[0])


def wrap_each_layer(strategy, model: nn.Module) -> None:
    """An FSDP strategy left without `auto_wrap_policy` wraps each transformer layer."""
    if not isinstance(strategy, FSDPStrategy) or strategy.kwargs.get("auto_wrap_policy") is not None:
        return
    layer = transformer_layer_class(model)
    if layer is not None:
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        strategy.kwargs["auto_wrap_policy"] = ModuleWrapPolicy({layer})
