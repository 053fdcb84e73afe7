"""CPU training levers that leave every result's distribution as it was: 15-20% of a step together.

Measured on MiniLM full fine-tuning (2 cores, batch 32, ~30 tokens; bench/README.md has the figures):
- glibc hands allocations over 32 MiB to mmap and returns them with munmap, and trims the heap top
  as soon as it is free. The embedding gradient (30522 x 384 floats, 47 MB) is such an allocation: it
  came back from the kernel every step as ~11.5k fresh zeroed pages, each a page fault. Raising both
  thresholds keeps the freed memory in the process for the next step (RSS stays at its peak).
- torch's CPU `bernoulli_` draws one mt19937 number per element, single-threaded (5-12 ns each):
  the 14 dropouts of a BERT step cost 9% of it. `BulkDropout` draws 64 bits per generator call and
  compares each 32-bit half with (1-p) * 2^32: the same Bernoulli(1-p) keep-mask (to 2^-32), from the
  same seeded generator (so runs stay reproducible and resume exactly), about 5x faster.
- torch's allocator asks for transparent huge pages for allocations of 2 MiB and more when
  THP_MEM_ALLOC_ENABLE=1 is in the environment at its first allocation: the CLI sets it before it
  imports torch (ftlab/cli.py). Fewer page faults (~1.6k -> ~0.4k a step) and TLB misses: 2-4% of a
  step, in 7 of 7 alternating process pairs.
Attention-probability dropout runs inside SDPA (its math path on CPU, `bernoulli_`) and is left as
it is. The 2026-12-01 bf16 profile gave its `bernoulli_` 10% of a step, but an attention function of
our own that drew that mask in bulk (SDPA's math path with `keep_mask`; commit 7099730, reverted)
measured, on and off over the same 104 steps of an epoch (`python -m bench.levers`, 3 pairs, 2
threads): 0.975x the step time in fp32 and 1.022x in bf16-mixed, within the pairs' spread
(0.97-1.03). Not worth the extra attention function (bench/README.md, "Levers").
"""

from __future__ import annotations

import ctypes
import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>
_MMAP_THRESHOLD = 1 << 30  # allocations below 1 GiB come from the heap and go back to it
_TRIM_THRESHOLD = 2**31 - 1  # the largest C int: the heap top is never handed back while training


def keep_freed_memory() -> bool:
    """Tell glibc malloc to keep freed memory for reuse; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False


class _MaskedScale(torch.autograd.Function):
    """x * mask * scale with the boolean mask (1 byte per element) saved for backward, as dropout saves it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return x.mul(mask).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return grad.mul(mask).mul_(ctx.scale), None, None


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """A boolean mask, each element True with probability 1 - p, from 32-bit halves of 64-bit draws."""
    n = shape.numel()
    words = torch.empty((n + 1) // 2, dtype=torch.int64)
    words.random_(-(2**63), 2**63 - 1)  # the full 64-bit range, one draw per word
    threshold = round((1.0 - p) * 2**32) - 2**31  # int32 lanes are uniform on [-2^31, 2^31)
    return words.view(torch.int32)[:n].view(shape) < threshold


class BulkDropout(nn.Dropout):
    """nn.Dropout (same p, same state) whose CPU keep-mask comes from `keep_mask`; elsewhere torch's own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0.0 < self.p < 1.0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        return _MaskedScale.apply(x, keep_mask(x.shape, self.p), 1.0 / (1.0 - self.p))


def use_bulk_dropout(model: nn.Module) -> int:
    """Replace every plain nn.Dropout under `model` by a BulkDropout of the same p; returns how many."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, BulkDropout(child.p))
                replaced += 1
    return replaced


def tune_for_cpu_training(model: nn.Module, keep_memory: bool, bulk_dropout: bool) -> None:
    if keep_memory and not keep_freed_memory():
        log.info("cpu.keep_freed_memory: not glibc, left as it is")
    if bulk_dropout:
        log.info("cpu.bulk_dropout: %d dropout modules draw their masks in bulk", use_bulk_dropout(model))
