"""Determinism: the same seed and config give the same run to the bit; the training data order is a
function of (seed, epoch) only, new each epoch, and untouched by anything else that draws random
numbers (so resuming a run, or logging more, cannot change it)."""

from __future__ import annotations

import random

import numpy as np
import torch

from ftlab.data.batching import LengthBucketBatchSampler, ResumableDataLoader
from ftlab.run import run

LENGTHS = torch.randint(3, 120, (500,), generator=torch.Generator().manual_seed(0)).tolist()


def test_same_seed_and_config_give_the_same_run_with_a_new_order_each_epoch(compose, monkeypatch):
    orders = []
    batches = LengthBucketBatchSampler.batches

    def recording(self):
        out = batches(self)
        if self.shuffle:
            orders.append((self.epoch, out))
        return out

    monkeypatch.setattr(LengthBucketBatchSampler, "batches", recording)
    overrides = ("dataset=acl_sup", "trainer.max_epochs=2", "seed=5")
    a = run(compose(*overrides))
    first, orders[:] = list(orders), []
    b = run(compose(*overrides))
    assert a["test"] == b["test"] and a["history"] == b["history"] and a["val"] == b["val"]
    assert [row["epoch"] for row in a["history"]] == [0, 1]
    assert orders == first
    assert [epoch for epoch, _ in first] == [0, 1]  # the sampler learns the epoch (Lightning cannot reach it)
    assert first[0][1] != first[1][1]


def test_different_seeds_give_different_orders(compose):
    from ftlab.config import build

    firsts = []
    for seed in (1, 2):
        cfg = compose("dataset=acl_sup", f"seed={seed}")
        tokenizer = build(cfg, "model").load_tokenizer()
        datamodule = build(cfg, "data", source=build(cfg, "dataset"), tokenizer=tokenizer, seed=cfg.seed)
        datamodule.setup()
        firsts.append(next(iter(datamodule.train_dataloader()))["input_ids"])
    assert not torch.equal(firsts[0], firsts[1])
    a, b = LengthBucketBatchSampler(LENGTHS, 8, seed=1), LengthBucketBatchSampler(LENGTHS, 8, seed=2)
    assert a.batches() != b.batches()
    assert sorted(i for batch in b.batches() for i in batch) == list(range(len(LENGTHS)))


def test_the_order_depends_only_on_seed_and_epoch():
    expected = LengthBucketBatchSampler(LENGTHS, 8, seed=3)
    expected.set_epoch(2)
    expected = list(expected)
    sampler = LengthBucketBatchSampler(LENGTHS, 8, seed=3)
    torch.manual_seed(123), random.seed(4), np.random.seed(5)
    torch.rand(10), random.random(), np.random.rand()
    for epoch in (0, 5, 2):  # other epochs before, other global RNG states: no difference
        sampler.set_epoch(epoch)
        order = list(sampler)
    assert order == expected
    sampler.set_epoch(3)
    assert list(sampler) != expected
    plain = LengthBucketBatchSampler(LENGTHS, 8, seed=3, chunk_batches=1)  # data.bucket_by_length=false
    plain.set_epoch(2)
    assert list(plain) == list(plain) and list(plain) != expected


def test_a_resumed_loader_serves_the_rest_of_the_same_epoch_and_leaves_the_global_rng_alone():
    epoch = [1]

    def loader() -> ResumableDataLoader:
        sampler = LengthBucketBatchSampler(LENGTHS, 8, seed=3)
        return ResumableDataLoader(list(range(len(LENGTHS))), batch_sampler=sampler, collate_fn=list,
                                   generator=torch.Generator().manual_seed(3), epoch_fn=lambda: epoch[0])

    full = loader()
    rng = torch.get_rng_state()
    whole = list(full)
    assert torch.equal(rng, torch.get_rng_state())  # dropout draws from it: the data must not
    partial = iter(full)
    served = [next(partial) for _ in range(5)]
    state = full.state_dict()
    assert state == {"epoch": 1, "batches": 5} and served == whole[:5]
    resumed = loader()
    resumed.load_state_dict(state)
    assert list(resumed) == whole[5:]
    assert list(resumed) == whole  # the skip is for the resumed pass only
    ended = loader()
    ended.load_state_dict({"epoch": 0, "batches": 63})  # a checkpoint from an earlier epoch's end: no skip
    assert list(ended) == whole
