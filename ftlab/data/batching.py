"""Length-bucketed batches and dynamic padding.

Sorting examples by length within large shuffled chunks makes each batch hold examples of similar
length, so dynamic padding pads little; shuffling the batches keeps the order random. The order
depends only on (seed, epoch), so a resumed or repeated run sees the same batches.

Under DDP the sampler shards itself (Lightning's DistributedSampler cannot wrap a batch sampler):
it forms global batches of batch_size x world size exactly as one process would, and each rank
takes every world-th example of each. The ranks' gradients, averaged, are then the gradient of
the one-process batch, so N processes at batch b train like one at batch N x b.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Sampler

INDEX = "index"  # an example's row in its split, carried through the batch when the dataset has it


class LengthBucketBatchSampler(Sampler[list[int]]):
    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        chunk_batches: int = 50,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.lengths = torch.as_tensor(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self._start = 0
        self.chunk_batches = chunk_batches

    @staticmethod
    def _world() -> tuple[int, int]:
        """(rank, world size) of the process group, (0, 1) outside one."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def set_epoch(self, epoch: int) -> None:
        """Every epoch gets its own order. (Lightning's own set_epoch call does not reach a batch
        sampler: `ResumableDataLoader` makes it.)"""
        self.epoch = epoch

    def start_at(self, batch: int) -> None:
        """The next pass only (a resumed epoch) skips the batches an earlier process trained on."""
        self._start = batch

    def __len__(self) -> int:
        """len(self.batches()) without forming them: every global batch is full but the last, of n % size."""
        rank, world = self._world()
        size = self.batch_size * world
        full, rest = divmod(len(self.lengths), size)
        if self.drop_last:
            return full
        if self.shuffle:  # training keeps the short batch when every rank gets an example of it
            return full + (rest >= world)
        return full + (rest > rank)

    def global_batches(self, size: int) -> list[list[int]]:
        """Batches of `size` over the whole data set, the same in every process."""
        n = len(self.lengths)
        if not self.shuffle:  # evaluation: sorted by length, the order is irrelevant to the metrics
            order = torch.argsort(self.lengths, descending=True, stable=True)
            batches = [order[i : i + size].tolist() for i in range(0, n, size)]
            return [b for b in batches if len(b) == size] if self.drop_last else batches
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(n, generator=gen)
        chunk_size = size * self.chunk_batches
        batches: list[list[int]] = []
        for start in range(0, n, chunk_size):
            chunk = perm[start : start + chunk_size]
            chunk = chunk[torch.argsort(self.lengths[chunk], descending=True, stable=True)]
            batches.extend(chunk[i : i + size].tolist() for i in range(0, len(chunk), size))
        if self.drop_last:
            batches = [b for b in batches if len(b) == size]
        order = torch.randperm(len(batches), generator=gen).tolist()
        return [batches[i] for i in order]

    def batches(self) -> list[list[int]]:
        """This process's batches: its share of each global batch."""
        rank, world = self._world()
        batches = self.global_batches(self.batch_size * world)
        if world == 1:
            return batches
        if self.shuffle:  # training: every rank must step as often as the others, none on an empty batch
            batches = [b for b in batches if len(b) >= world]
        shares = [b[rank::world] for b in batches]
        return [s for s in shares if s]  # evaluation: a short last batch may leave a rank out

    def __iter__(self) -> Iterator[list[int]]:
        start, self._start = self._start, 0
        return iter(self.batches()[start:])


class ResumableDataLoader(DataLoader):
    """The training loader: knows its epoch and how many batches of it it has served, so that a
    checkpoint taken mid-epoch resumes at the next batch (`state_dict()` goes into every checkpoint;
    ftlab.callbacks.ResumeState hands it back to the resumed run's loader).

    The pass starts lazily, at the first batch asked for: by then Lightning has restored its epoch
    counter (`epoch_fn`), whichever point a run resumes from. With a `generator`, starting a pass
    draws nothing from torch's global RNG, so the dropout masks of a run do not depend on where
    it was resumed."""

    def __init__(self, *args, epoch_fn: Callable[[], int | None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch_fn = epoch_fn
        self.epoch = 0
        self.served = 0  # batches handed out in the current pass
        self._resume: dict | None = None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batches": self.served}

    def load_state_dict(self, state: dict) -> None:
        self._resume = dict(state)

    def __iter__(self):
        return self._pass()

    def _pass(self):
        epoch = self.epoch_fn() if self.epoch_fn else None
        self.epoch = self.epoch if epoch is None else epoch
        resume, self._resume = self._resume or {}, None
        skip = int(resume.get("batches", 0)) if resume.get("epoch") == self.epoch else 0
        self.batch_sampler.set_epoch(self.epoch)
        self.batch_sampler.start_at(skip)
        self.served = skip
        for batch in super().__iter__():
            self.served += 1
            yield batch


class DynamicPaddingCollator:
    """Pads `input_ids` / `attention_mask` (/ `token_type_ids`) to the longest example of the batch."""

    def __init__(self, pad_token_id: int, padding_side: str = "right", pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side
        self.multiple = pad_to_multiple_of

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(e["input_ids"]) for e in examples)
        if self.multiple:
            longest = -(-longest // self.multiple) * self.multiple
        batch: dict[str, torch.Tensor] = {}
        for key, pad in (("input_ids", self.pad_token_id), ("attention_mask", 0), ("token_type_ids", 0)):
            if key not in examples[0]:
                continue
            out = torch.full((len(examples), longest), pad, dtype=torch.long)
            for row, e in enumerate(examples):
                seq = torch.as_tensor(e[key], dtype=torch.long)
                if self.padding_side == "right":
                    out[row, : len(seq)] = seq
                else:
                    out[row, longest - len(seq) :] = seq
            batch[key] = out
        labels = [e["labels"] for e in examples]
        batch["labels"] = torch.as_tensor(labels)
        if INDEX in examples[0]:
            batch[INDEX] = torch.as_tensor([e[INDEX] for e in examples], dtype=torch.long)
        return batch
