"""The CPU training levers (ftlab/cpu.py): bulk-drawn dropout is dropout, glibc keeps freed memory,
and a CPU run uses both unless told not to."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from ftlab.config import build
from ftlab.cpu import BulkDropout, keep_freed_memory, keep_mask, use_bulk_dropout
from ftlab.data.task import classification
from ftlab.run import run


@pytest.mark.parametrize("p", [0.03, 0.1, 0.5, 0.9])
def test_keep_mask_keeps_each_element_with_probability_one_minus_p(p):
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([2000, 1001]), p)  # odd size: the last 64-bit word is half used
    assert mask.dtype == torch.bool and mask.shape == (2000, 1001)
    n = mask.numel()
    assert abs((1 - mask.float().mean().item()) - p) < 5 * (p * (1 - p) / n) ** 0.5
    rows, cols = mask.float().mean(1), mask.float().mean(0)  # no position is favoured
    assert abs(rows.mean().item() - (1 - p)) < 0.01 and abs(cols.mean().item() - (1 - p)) < 0.01


def test_keep_mask_follows_the_seeded_generator_and_is_new_each_call():
    torch.manual_seed(7)
    a, b = keep_mask(torch.Size([64, 33]), 0.1), keep_mask(torch.Size([64, 33]), 0.1)
    torch.manual_seed(7)
    assert torch.equal(a, keep_mask(torch.Size([64, 33]), 0.1))
    assert not torch.equal(a, b)
    # neighbouring elements (two halves of one 64-bit draw) are independent: P(both dropped) = p^2
    wide = keep_mask(torch.Size([1_000_000]), 0.5).view(-1, 2)
    assert abs((~wide).all(1).float().mean().item() - 0.25) < 0.005


def test_bulk_dropout_trains_like_dropout_and_is_the_identity_in_eval():
    torch.manual_seed(0)
    drop = BulkDropout(0.2)
    x = torch.randn(300, 200, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.8)
    assert abs(1 - kept.float().mean().item() - 0.2) < 0.01
    y.backward(torch.ones_like(y))
    assert torch.allclose(x.grad, kept.float() / 0.8)  # the gradient flows through kept elements only
    drop.eval()
    assert drop(x) is x
    assert torch.equal(BulkDropout(1.0).train()(x), torch.zeros_like(x))  # p = 1: torch's own


def test_use_bulk_dropout_replaces_every_dropout_and_keeps_the_state_dict(compose):
    backbone = build(compose(), "model")
    model = backbone.build(classification(["a", "b", "c"]), backbone.load_tokenizer()).model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = [m.p for m in model.modules() if type(m) is nn.Dropout]
    assert plain and use_bulk_dropout(model) == len(plain)
    assert [m.p for m in model.modules() if isinstance(m, BulkDropout)] == plain
    assert not any(type(m) is nn.Dropout for m in model.modules())
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_glibc_keeps_freed_memory():
    assert keep_freed_memory()  # Linux with glibc, as CI and the studies' clusters run


def test_a_cpu_run_uses_bulk_dropout_unless_told_not_to(compose, caplog):
    with caplog.at_level(logging.INFO, logger="ftlab.cpu"):
        run(compose("peft=lora"))
    assert any("dropout modules draw their masks in bulk" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ftlab.cpu"):
        run(compose("peft=lora", "cpu.bulk_dropout=false"))
    assert not any("in bulk" in r.getMessage() for r in caplog.records)
