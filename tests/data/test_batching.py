import pytest
import torch

from ftlab.data.batching import DynamicPaddingCollator, LengthBucketBatchSampler


def test_bucket_sampler_covers_every_index_once_and_depends_only_on_seed_and_epoch():
    lengths = torch.randint(3, 120, (1000,)).tolist()
    a = LengthBucketBatchSampler(lengths, batch_size=16, seed=7, chunk_batches=4)
    b = LengthBucketBatchSampler(lengths, batch_size=16, seed=7, chunk_batches=4)
    first = a.batches()
    assert sorted(i for batch in first for i in batch) == list(range(1000))
    assert len(first) == len(a) == 63
    assert first == b.batches()
    a.set_epoch(1)
    assert a.batches() != first
    assert LengthBucketBatchSampler(lengths, 16, seed=8, chunk_batches=4).batches() != first


def test_bucket_sampler_groups_similar_lengths():
    lengths = torch.randint(3, 120, (2000,)).tolist()
    sampler = LengthBucketBatchSampler(lengths, batch_size=32, seed=0)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in sampler.batches())
    randomly = sum(max(lengths[i] for i in b) * len(b) for b in torch.randperm(2000).split(32))
    assert padded < 0.75 * randomly


def test_eval_order_is_sorted_and_complete():
    lengths = [5, 1, 9, 3]
    batches = LengthBucketBatchSampler(lengths, batch_size=3, shuffle=False).batches()
    assert batches == [[2, 0, 3], [1]]


def test_collator_pads_to_longest_on_either_side():
    examples = [
        {"input_ids": [101, 7, 102], "attention_mask": [1, 1, 1], "labels": 0},
        {"input_ids": [101, 102], "attention_mask": [1, 1], "labels": 2},
    ]
    right = DynamicPaddingCollator(pad_token_id=0)(examples)
    assert right["input_ids"].tolist() == [[101, 7, 102], [101, 102, 0]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert right["labels"].tolist() == [0, 2]
    left = DynamicPaddingCollator(pad_token_id=9, padding_side="left")(examples)
    assert left["input_ids"].tolist() == [[101, 7, 102], [9, 101, 102]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 1, 1]]


def test_collator_keeps_float_labels_for_regression():
    examples = [{"input_ids": [1], "attention_mask": [1], "labels": 3.5}]
    assert DynamicPaddingCollator(0)(examples)["labels"].dtype == torch.float32


@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_share_the_one_process_batches(monkeypatch, shuffle):
    """Under DDP each rank takes every world-th example of the batch one process at world x batch
    would form: together the ranks see exactly those batches, training ranks step equally often."""
    lengths = [(i * 37) % 61 + 3 for i in range(203)]
    single = LengthBucketBatchSampler(lengths, 8, shuffle=shuffle, seed=3).batches()
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(LengthBucketBatchSampler, "_world", staticmethod(lambda rank=rank: (rank, 2)))
        shares.append(LengthBucketBatchSampler(lengths, 4, shuffle=shuffle, seed=3).batches())
    if shuffle:
        assert len(shares[0]) == len(shares[1])
        single = [b for b in single if len(b) >= 2]
    for batch, first, second in zip(single, shares[0], shares[1]):
        assert sorted(first + second) == sorted(batch)
    assert sum(len(b) for s in shares for b in s) == sum(len(b) for b in single)


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 2, 7, 48, 203])
def test_len_counts_the_batches_without_forming_them(monkeypatch, world, n):
    lengths = [(i * 37) % 61 + 3 for i in range(n)]
    for rank in range(world):
        monkeypatch.setattr(LengthBucketBatchSampler, "_world", staticmethod(lambda r=rank: (r, world)))
        for shuffle in (True, False):
            for drop_last in (False, True):
                sampler = LengthBucketBatchSampler(lengths, 4, shuffle=shuffle, seed=1, chunk_batches=3, drop_last=drop_last)
                assert len(sampler) == len(sampler.batches()), (rank, shuffle, drop_last)
