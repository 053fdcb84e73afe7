"""Tokenize a dataset once, cache it on disk, and serve length-bucketed, dynamically padded batches.

The cache key covers the raw files' bytes, the source options, the tokenizer's full definition and
`max_length`, so a second run with the same inputs skips parsing and tokenization, and any change
to one of them tokenizes afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import datasets
import lightning as L
import torch
from torch.utils.data import DataLoader

from ftlab.atomic import OutOfSpace, is_out_of_space
from ftlab.data.batching import INDEX, DynamicPaddingCollator, LengthBucketBatchSampler, ResumableDataLoader
from ftlab.data.sources.base import SPLITS, DataSource
from ftlab.data.task import TaskSpec, TaskType
from ftlab.errors import InvalidValue
from ftlab.paths import default_cache_dir

log = logging.getLogger(__name__)
CACHE_FORMAT = 2  # bump when the cached layout (or the key) changes


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the tokenizer's full definition, minus the truncation/padding state a call leaves behind.

    That state is cleared rather than parsed out of the JSON (transformers sets it again at every
    call): hashing `to_str()` directly takes 3 ms, a JSON round trip of a 30k vocabulary 300 ms,
    which was most of a warm-cache start. tokenizers serialises deterministically (vocab by id)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
        ident = backend.to_str()
    else:
        ident = f"{tokenizer.name_or_path}|{sorted(tokenizer.get_vocab().items())}"
    ident += f"|{tokenizer.padding_side}|{tokenizer.truncation_side}"
    return hashlib.sha256(ident.encode()).hexdigest()


def splits_hash(splits: datasets.DatasetDict) -> str:
    """Content hash of the raw splits (texts and labels): equal hashes mean the same data."""
    h = hashlib.sha256()
    for name in SPLITS:
        h.update(name.encode())
        columns = splits[name].to_dict()
        for column in sorted(columns):
            h.update(column.encode())
            h.update(json.dumps(columns[column], ensure_ascii=False).encode())
    return h.hexdigest()


def check_settings(batch_size: int = 32, eval_batch_size: int | None = None, max_length: int = 128,
                   num_workers: int = 0, max_examples: dict | None = None, **_) -> None:
    """The `data.*` values, checked from the config alone (ftlab/config/checks.py) and again here."""
    for key, value in (("data.batch_size", batch_size), ("data.max_length", max_length)):
        if value < 1:
            raise InvalidValue(key, value, "a positive integer")
    if eval_batch_size is not None and eval_batch_size < 1:
        raise InvalidValue("data.eval_batch_size", eval_batch_size, "a positive integer or null")
    if num_workers < 0:
        raise InvalidValue("data.num_workers", num_workers, "an integer >= 0")
    for split, n in (max_examples or {}).items():
        if split not in SPLITS:
            raise InvalidValue(f"data.max_examples.{split}", n, f"a split among {', '.join(SPLITS)}")
        if n is not None and (not isinstance(n, int) or n < 1):
            raise InvalidValue(f"data.max_examples.{split}", n, "a positive integer or null (all)")


def with_index(splits: datasets.DatasetDict) -> datasets.DatasetDict:
    """Each split with an `index` column: the example's row in its split as the source loads it (before
    `max_examples`), which evaluation batches carry through length-bucketing so that predictions are put
    back in dataset order and joined with the text (ftlab/predictions.py)."""
    for split in SPLITS:
        if INDEX not in splits[split].column_names:
            splits[split] = splits[split].add_column(INDEX, list(range(len(splits[split]))))
    return splits


class TextClassificationDataModule(L.LightningDataModule):
    def __init__(
        self,
        source: DataSource,
        tokenizer,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        max_length: int = 128,
        num_workers: int = 0,
        bucket_by_length: bool = True,
        seed: int = 0,
        cache_dir: str | None = None,
        max_examples: dict | None = None,
        subsample_seed: int = 0,
    ):
        super().__init__()
        check_settings(batch_size, eval_batch_size, max_length, num_workers, max_examples)
        self.source = source
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.max_length = max_length
        self.num_workers = num_workers
        self.bucket_by_length = bucket_by_length
        self.seed = seed
        self.max_examples = dict(max_examples or {})
        self.subsample_seed = subsample_seed
        self.cache_root = Path(cache_dir or default_cache_dir()).expanduser() / "tokenized"
        self.task: TaskSpec = source.task()
        self.collate = DynamicPaddingCollator(tokenizer.pad_token_id, tokenizer.padding_side)
        self.splits: datasets.DatasetDict | None = None
        self.meta: dict = {}
        self.cache_hit: bool | None = None
        self._cache_key: str | None = None
        self.setup_seconds: float | None = None

    # ---- cache -------------------------------------------------------------------------------
    def cache_key(self) -> str:
        if self._cache_key is None:
            parts = [self.source.fingerprint(), tokenizer_fingerprint(self.tokenizer), str(self.max_length), str(CACHE_FORMAT)]
            self._cache_key = hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]
        return self._cache_key

    def cache_path(self) -> Path:
        return self.cache_root / f"{type(self.source).__name__}-{self.cache_key()}"

    def prepare_data(self) -> None:
        """Parse and tokenize into the cache unless it is there (rank 0 only under DDP)."""
        path = self.cache_path()
        if (path / "meta.json").is_file():
            return
        raw = self.source.load()
        tokenized = raw.splits.map(
            self._tokenize, batched=True, remove_columns=raw.splits["train"].column_names, desc="tokenizing"
        )
        meta = {
            "origin": raw.origin,
            "data_hash": splits_hash(raw.splits),
            "split_sizes": {s: len(raw.splits[s]) for s in SPLITS},
            "task": raw.task.to_dict(),
        }
        self.cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.cache_root, prefix=".tmp-"))
        try:
            tokenized.save_to_disk(str(tmp / "data"))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            os.replace(tmp, path)  # atomic: a concurrent job either sees a complete entry or none
        except OSError as err:
            if is_out_of_space(err):
                raise OutOfSpace(self.cache_root, None, "the tokenization cache",
                                 "free space there, or point FTLAB_CACHE_DIR (paths.cache_dir) at a folder "
                                 "with room") from None
            if not (path / "meta.json").is_file():  # else a concurrent run renamed its entry first
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.cache_hit = False

    def _tokenize(self, batch: dict) -> dict:
        pair = batch.get("text_pair")
        enc = self.tokenizer(batch["text"], pair, truncation=True, max_length=self.max_length)
        enc["labels"] = batch["label"]
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return dict(enc)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        start = time.perf_counter()
        if self.cache_hit is None and (self.cache_path() / "meta.json").is_file():
            self.cache_hit = True
        self.prepare_data()
        try:
            splits, self.meta = self._read_cache()
        except Exception as err:  # derived data: a damaged entry is discarded and built again
            log.warning("tokenization cache entry %s cannot be read (%s: %s): rebuilding it",
                        self.cache_path(), type(err).__name__, str(err).splitlines()[0][:120] if str(err) else "")
            shutil.rmtree(self.cache_path(), ignore_errors=True)
            self.cache_hit = False
            self.prepare_data()
            splits, self.meta = self._read_cache()
        self.splits = self._subsample(with_index(splits))
        if any(self.max_examples.values()):
            self.meta["subsampled"] = {s: len(self.splits[s]) for s in SPLITS}
        self.setup_seconds = time.perf_counter() - start
        log.info("data ready in %.2fs (%s): %s", self.setup_seconds, "cache hit" if self.cache_hit else "tokenized", self.meta["split_sizes"])

    def _read_cache(self) -> tuple[datasets.DatasetDict, dict]:
        """The entry's splits and meta, checked against each other: a truncated arrow file fails to
        open here (its record batches are located on open), a garbled meta.json fails to parse."""
        path = self.cache_path()
        meta = json.loads((path / "meta.json").read_text())
        splits = datasets.load_from_disk(str(path / "data"))
        for split in SPLITS:
            if len(splits[split]) != meta["split_sizes"][split]:
                raise ValueError(f"split {split} has {len(splits[split])} rows, meta.json says {meta['split_sizes'][split]}")
        return splits, meta

    def _subsample(self, splits: datasets.DatasetDict) -> datasets.DatasetDict:
        """A random subset of each split capped by `max_examples`, drawn with `subsample_seed` (not the
        run's seed): every seed of a sweep trains and is tested on the same examples."""
        for split, n in self.max_examples.items():
            if n is not None and n < len(splits[split]):
                gen = torch.Generator().manual_seed(self.subsample_seed)
                keep = torch.randperm(len(splits[split]), generator=gen)[:n].sort().values.tolist()
                splits[split] = splits[split].select(keep)
        return splits

    def train_label_counts(self) -> tuple[list[int], int]:
        """(examples per class, or positives per label for multi-label; the training split's size),
        after `max_examples`: what `loss.class_weights=balanced` / `loss.pos_weight=balanced` weigh."""
        if self.splits is None:
            raise RuntimeError("train_label_counts() before setup()")
        if self.task.task_type is TaskType.REGRESSION:
            raise ValueError("a regression task has no label counts")
        labels = torch.tensor(self.splits["train"].select_columns(["labels"])[:]["labels"])
        n = len(self.splits["train"])
        if self.task.task_type is TaskType.MULTI_LABEL:
            counts = (labels.reshape(n, -1) > 0.5).sum(0) if n else torch.zeros(self.task.num_labels, dtype=torch.long)
        else:
            counts = torch.bincount(labels.long(), minlength=self.task.num_labels)
        return [int(c) for c in counts], n

    # ---- loaders -----------------------------------------------------------------------------
    def _loader(self, split: str, train: bool) -> DataLoader:
        """Every loader takes its batches from the seeded sampler, which shards them under DDP. Training
        batches are bucketed by length or not (chunks of one batch: plain shuffled batches); the order is
        a function of (seed, epoch) and a run resumed mid-epoch continues it; every loader draws
        from its own generator, never from the global RNG that dropout uses."""
        data = self.splits[split]
        size = self.batch_size if train else self.eval_batch_size
        common = {
            "collate_fn": self.collate,
            "num_workers": self.num_workers,
            "persistent_workers": self.num_workers > 0,
            "generator": torch.Generator().manual_seed(self.seed),
        }
        hidden = ("length", INDEX) if train else ("length",)  # evaluation batches carry each example's index
        data_columns = data.with_format(columns=[c for c in data.column_names if c not in hidden])
        lengths = data.select_columns(["length"])[:]["length"]
        if train:
            sampler = LengthBucketBatchSampler(lengths, size, shuffle=True, seed=self.seed,
                                               chunk_batches=50 if self.bucket_by_length else 1)
            return ResumableDataLoader(data_columns, batch_sampler=sampler, epoch_fn=self._epoch, **common)
        # evaluation: sorted by length (the metrics do not depend on the order), and sharded under DDP
        return DataLoader(data_columns, batch_sampler=LengthBucketBatchSampler(lengths, size, shuffle=False), **common)

    def _epoch(self) -> int | None:
        return self.trainer.current_epoch if self.trainer is not None else None

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
