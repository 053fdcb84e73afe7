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
    assert any("dropout modules and 1 attention functions draw their masks in bulk" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ftlab.cpu"):
        run(compose("peft=lora", "cpu.bulk_dropout=false"))
    assert not any("in bulk" in r.getMessage() for r in caplog.records)


def _sdpa_with_mask(query, key, value, valid, keep, p):
    """aten's SDPA math path (what F.scaled_dot_product_attention runs on CPU with dropout), told the keep-mask."""
    additive = torch.zeros(valid.shape, dtype=query.dtype).masked_fill(~valid, float("-inf"))
    out, _ = torch.ops.aten._scaled_dot_product_attention_math(query, key, value, additive, p, False, keep)
    return out.transpose(1, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mask_kind", ["bool", "additive"])
def test_bulk_dropout_sdpa_is_sdpas_math_path_with_the_bulk_mask(monkeypatch, dtype, mask_kind):
    from ftlab import cpu

    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 12, 20, 32, dtype=dtype, requires_grad=True) for _ in range(3))
    valid = torch.ones(4, 1, 20, 20, dtype=torch.bool)
    valid[1, :, :, 15:] = valid[3, :, :, 7:] = False  # two padded sequences
    mask = valid if mask_kind == "bool" else torch.zeros(valid.shape, dtype=dtype).masked_fill(
        ~valid, torch.finfo(dtype).min)
    keep = keep_mask(torch.Size([4, 12, 20, 20]), 0.1)
    monkeypatch.setattr(cpu, "keep_mask", lambda shape, p: keep)
    ours, weights = cpu.bulk_dropout_sdpa(nn.Module(), q, k, v, mask, dropout=0.1)
    theirs = _sdpa_with_mask(q, k, v, valid, keep, 0.1)
    assert weights is None and ours.dtype == dtype and ours.shape == (4, 20, 12, 32)
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    assert torch.allclose(ours.float(), theirs.float(), atol=tol, rtol=tol)
    grad = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, (q, k, v), grad), torch.autograd.grad(theirs, (q, k, v), grad)):
        assert torch.allclose(a.float(), b.float(), atol=tol * 10, rtol=tol)
    # the mask matters: another keep-mask gives another output
    assert not torch.allclose(ours.float(), _sdpa_with_mask(q, k, v, valid, torch.ones_like(keep), 0.1).float())


def test_bulk_dropout_sdpa_hands_other_calls_to_sdpa():
    from ftlab.cpu import bulk_dropout_sdpa
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 16) for _ in range(3))
    module = nn.Module()
    for kwargs in ({"dropout": 0.0}, {"dropout": 0.0, "is_causal": True}):
        ours, _ = bulk_dropout_sdpa(module, q, k, v, None, **kwargs)
        assert torch.equal(ours, sdpa_attention_forward(module, q, k, v, None, **kwargs)[0])


def test_a_models_sdpa_attention_draws_in_bulk_and_predicts_and_saves_as_before(compose, tmp_path):
    from transformers import AutoConfig

    from ftlab.cpu import BULK_DROPOUT_SDPA, use_bulk_dropout_attention

    backbone = build(compose(), "model")
    model = backbone.build(classification(["a", "b", "c"]), backbone.load_tokenizer()).model
    assert model.config._attn_implementation == "sdpa"
    batch = {"input_ids": torch.randint(5, 100, (3, 11)), "attention_mask": torch.ones(3, 11, dtype=torch.long)}
    batch["attention_mask"][1, 6:] = 0
    model.eval()
    with torch.no_grad():
        before = model(**batch).logits
    assert use_bulk_dropout_attention(model) == 1
    assert model.config._attn_implementation == BULK_DROPOUT_SDPA
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, before)  # eval: no dropout, sdpa's own kernel
    model.train()
    torch.manual_seed(3)
    first = model(**batch).logits
    torch.manual_seed(3)
    assert torch.equal(model(**batch).logits, first)  # seeded: reproducible
    assert not torch.equal(model(**batch).logits, first)  # and dropout is on
    model.save_pretrained(tmp_path)
    assert BULK_DROPOUT_SDPA not in (tmp_path / "config.json").read_text()  # others load it as sdpa
    assert AutoConfig.from_pretrained(tmp_path)._attn_implementation in (None, "sdpa")
