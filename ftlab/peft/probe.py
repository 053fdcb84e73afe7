"""A first forward and backward at inject time, for any method (prompt learning and QLoRA use it;
it needs nothing of HF peft), so that a method which does not fit the model fails before training
and not at its first (or its longest) batch."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def probe(model: nn.Module, watch: Iterable[nn.Parameter] = ()) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Feeds a right-padded batch of two and its short example alone, in eval mode (dropout off);
    returns the short example's logits in the batch and alone (a method that reads padding makes
    them differ) and whether every `watch`ed parameter got a non-zero gradient (a method the model
    silently ignores gets none)."""
    vocab = model.get_input_embeddings().num_embeddings
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    ids = [t for t in range(vocab // 2, vocab // 2 + 7) if t != pad][:6]
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids, ids[:3] + [pad] * 3], device=device)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3], device=device)
    watch, was_training = list(watch), model.training
    model.eval()
    try:
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        logits.float().sum().backward()
        with torch.no_grad():
            alone = model(input_ids=input_ids[1:, :3], attention_mask=mask[1:, :3]).logits
        reached = all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in watch)
        return logits[1:].detach().float(), alone.float(), reached
    finally:
        model.train(was_training)
        for param in model.parameters():
            param.grad = None
