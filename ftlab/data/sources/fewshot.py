"""Few-shot variants: `k` examples per class sampled from another dataset's train split.

`base` is the name of another dataset config (configs.py) (built with the same `data_dir`, plus
`base_overrides`, e.g. `{text_fields: title_description}` for AG News), or a `DataSource`. Only
single-label bases have classes to sample.

Sampling: for every class, in class-id order, a permutation of that class's rows (in split order)
is drawn from `numpy.random.default_rng(sample_seed)` and its first `k` rows are kept, in their
original order. The permutation does not depend on `k`, so the k=8 sample is part of the k=16 one.
The train split becomes exactly k x classes rows.

Validation: `validation=full` (default) keeps the base's whole validation split for picking the
best checkpoint (ACL-ARC's dev set has 4 examples of its rarest classes, too few for any useful k);
`validation=few_shot` samples k per class from it as well (its own generator, so the train sample
is the same either way), the stricter protocol where no more labelled data exists than k per class.
Test always stays full.

A class with fewer than `k` rows in a sampled split is an error that names it and its count.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np

from ftlab.data.sources.base import DataSource, LoadedData
from ftlab.data.sources.configs import named_source, require_single_label
from ftlab.data.task import TaskSpec
from ftlab.errors import InvalidChoice, InvalidValue, UserError

VALIDATION = ("full", "few_shot")


class FewShotSource(DataSource):
    def __init__(
        self,
        base: str | DataSource,
        k: int = 16,
        sample_seed: int = 2022,
        validation: str = "full",
        base_overrides: dict | None = None,
        data_dir: str | None = None,
    ):
        super().__init__(data_dir)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidValue("dataset.k", k, "a positive integer (examples per class)")
        if validation not in VALIDATION:
            raise InvalidChoice("dataset.validation", validation, VALIDATION)
        if isinstance(base, DataSource):
            self.base_name = base.name
            self.base = base
        else:
            self.base_name = base
            self.base = named_source(base, data_dir, "dataset.base", base_overrides, "dataset.base_overrides")
        self.base_overrides = dict(base_overrides or {})
        self.k = k
        self.sample_seed = sample_seed
        self.validation = validation
        self._task = require_single_label(
            self.base, f"dataset.base={self.base_name}", "sample few-shot from a single-label dataset"
        )

    @property
    def name(self) -> str:
        return f"{self.base.name}_fs{self.k}"

    @property
    def hub_id(self) -> str | None:
        return self.base.hub_id

    @property
    def file_format(self) -> str:
        return self.base.file_format

    def local_files(self) -> list[Path]:
        return self.base.local_files()

    def has_local(self) -> bool:
        return self.base.has_local()

    def task(self) -> TaskSpec:
        return self._task

    def params(self) -> dict:
        return {"k": self.k, "sample_seed": self.sample_seed, "validation": self.validation}

    def content_digests(self) -> Iterator[bytes]:
        """The base's fingerprint (its options and file bytes); k, seed and validation mode are params()."""
        yield self.base.fingerprint().encode()

    def load(self) -> LoadedData:
        loaded = self.base.load()
        return LoadedData(self._sample(loaded.splits), self.task(), loaded.origin)

    def load_local(self) -> datasets.DatasetDict:
        return self._sample(self.base.load_local())

    def _sample(self, splits: datasets.DatasetDict) -> datasets.DatasetDict:
        out = dict(splits)
        out["train"] = self.sample(splits["train"], "train", 0)
        if self.validation == "few_shot":
            out["validation"] = self.sample(splits["validation"], "validation", 1)
        return datasets.DatasetDict(out)

    def sample(self, ds: datasets.Dataset, split: str, stream: int) -> datasets.Dataset:
        """k rows per class of `ds`, deterministic in `sample_seed` (one generator per split)."""
        labels = np.asarray(ds.select_columns(["label"])[:]["label"], dtype=np.int64)
        names = self._task.label_names
        by_class = [np.flatnonzero(labels == c) for c in range(len(names))]
        counts = [len(rows) for rows in by_class]
        short = next((c for c, n in enumerate(counts) if n < self.k), None)
        if short is not None:
            fix = f"use dataset.k={min(counts)} or less" if min(counts) else "choose a base where every class occurs"
            if split == "validation":
                fix += ", or dataset.validation=full"
            raise UserError(
                f"dataset {self.name}: class {names[short]!r} has only {counts[short]} example(s) in the {split} "
                f"split of {self.base_name}, fewer than dataset.k={self.k}",
                fix,
            )
        rng = np.random.default_rng([self.sample_seed, stream])
        keep = np.concatenate([rows[rng.permutation(len(rows))[: self.k]] for rows in by_class])
        return ds.select(np.sort(keep).tolist())
