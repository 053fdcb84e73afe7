"""Tokenization: done once, cached on disk by tokenizer + data files + max_length; pairs and singles."""

import pytest

from ftlab.config import build
from ftlab.data.datamodule import TextClassificationDataModule


def make_datamodule(cfg):
    tokenizer = build(cfg, "model").load_tokenizer()
    return build(cfg, "data", source=build(cfg, "dataset"), tokenizer=tokenizer, seed=0)


def test_second_setup_hits_the_cache_and_does_not_tokenize(compose, tmp_path, monkeypatch):
    cfg = compose("dataset=acl_sup", f"paths.cache_dir={tmp_path / 'cache'}")
    first = make_datamodule(cfg)
    first.setup()
    assert first.cache_hit is False

    second = make_datamodule(cfg)
    monkeypatch.setattr(TextClassificationDataModule, "_tokenize", lambda *a, **k: pytest.fail("re-tokenized"))
    monkeypatch.setattr(type(second.source), "load_local", lambda *a, **k: pytest.fail("re-parsed"))
    second.setup()
    assert second.cache_hit is True
    assert second.meta == first.meta
    assert second.splits["train"][0] == first.splits["train"][0]


def test_cache_key_follows_max_length_and_tokenizer(compose, tmp_path):
    cfg = compose("dataset=acl_sup", f"paths.cache_dir={tmp_path / 'cache'}")
    base = make_datamodule(cfg).cache_key()
    assert make_datamodule(cfg).cache_key() == base
    assert make_datamodule(compose("dataset=acl_sup", "data.max_length=64")).cache_key() != base
    other_tok = compose("dataset=acl_sup", "model=tiny_roberta")
    assert make_datamodule(other_tok).cache_key() == base  # same tokenizer files: same tokens
    other_data = compose("dataset=restaurant_sup")
    assert make_datamodule(other_data).cache_key() != base


def test_pairs_are_encoded_as_pairs_and_truncated(compose):
    dm = make_datamodule(compose("dataset=restaurant_sup", "data.max_length=16"))
    dm.setup()
    row = dm.splits["train"][0]
    tokenizer = dm.tokenizer
    assert row["input_ids"].count(tokenizer.sep_token_id) == 2  # [CLS] term [SEP] sentence [SEP]
    assert 1 in row["token_type_ids"]
    assert max(dm.splits["train"]["length"]) <= 16


def test_batches_are_padded_per_batch_not_to_max_length(compose):
    dm = make_datamodule(compose("dataset=acl_sup"))
    dm.setup()
    widths = {batch["input_ids"].shape[1] for batch in dm.train_dataloader()}
    assert len(widths) > 3 and min(widths) < dm.max_length
    total = sum(len(b["labels"]) for b in dm.val_dataloader())
    assert total == len(dm.splits["validation"])
