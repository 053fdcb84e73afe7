"""bitsandbytes' AdamW variants as optimizer choices: 8-bit states (a quarter of AdamW's optimizer
memory) and paged states (evicted to CPU RAM under GPU memory pressure, QLoRA's paged_adamw).

Paging is CUDA unified memory: on a CPU there is nothing to page from, and the update is the same
without it. So on CPU a paged optimizer runs unpaged with a warning: paged 32-bit becomes
torch's AdamW (the same update, measured equal to 2e-7 after 5 steps, and ~6x faster than
bitsandbytes' CPU kernel), paged 8-bit becomes bitsandbytes' unpaged AdamW8bit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch

from ftlab.errors import InvalidChoice, UserError

log = logging.getLogger(__name__)

BNB_ADAMW = f"{__name__}.bnb_adamw"
TORCH_ADAMW = "torch.optim.AdamW"


def optimizer_that_runs(target: str, bits: int, paged: bool, device: str) -> tuple[str, bool]:
    """(target, paged) of the optimizer that really runs for `optimizer._target_` = `target` with
    these settings on `device` ("cuda" or "cpu"): paging needs CUDA, so on CPU `bnb_adamw` runs
    unpaged, as torch's AdamW when 32-bit. `bnb_adamw` builds by it and the memory estimate prices it."""
    if not (str(target).endswith("bnb_adamw") and paged and device != "cuda"):
        return target, paged
    return (TORCH_ADAMW if bits == 32 else target), False


def bnb_adamw(
    params: Iterable,
    bits: int = 8,
    paged: bool = False,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    if bits not in (8, 32):
        raise InvalidChoice("optimizer.bits", bits, (8, 32))
    params = list(params)
    kwargs = {"lr": lr, "weight_decay": weight_decay, "betas": tuple(betas), "eps": eps}
    on_cuda = any(p.is_cuda for group in params for p in (group["params"] if isinstance(group, dict) else [group]))
    target, runs_paged = optimizer_that_runs(BNB_ADAMW, bits, paged, "cuda" if on_cuda else "cpu")
    if paged and not runs_paged:
        log.warning("optimizer: paged optimizers need CUDA (unified memory); on CPU the same %d-bit AdamW "
                    "update runs unpaged", bits)
    if target == TORCH_ADAMW:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise UserError("the 8-bit and paged AdamW optimizers need bitsandbytes",
                        "pip install 'ftlab[quant]' (bitsandbytes), or use optimizer=adamw") from None
    name = f"{'Paged' if runs_paged else ''}AdamW{bits}bit"
    return getattr(bnb.optim, name)(params, **kwargs)
