"""What ftlab adds to Lightning's multi-process strategies (trainer=ddp, trainer=fsdp).

DDP needs nothing more than the self-sharding batch sampler (ftlab/data/batching.py) and rank-0
writes (ftlab/run.py). FSDP shards best one transformer layer per unit: without a wrap policy
Lightning makes the whole model one unit, whose full parameters every process gathers at once.
"""

from __future__ import annotations

from lightning.pytorch.strategies import FSDPStrategy
from torch import nn

from ftlab.models.structure import block_class


def wrap_each_layer(strategy, model: nn.Module) -> None:
    """An FSDP strategy left without `auto_wrap_policy` wraps each transformer layer."""
    if not isinstance(strategy, FSDPStrategy) or strategy.kwargs.get("auto_wrap_policy") is not None:
        return
    layer = block_class(model)  # the stack the adapters and the memory estimate see too
    if layer is not None:
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        strategy.kwargs["auto_wrap_policy"] = ModuleWrapPolicy({layer})
