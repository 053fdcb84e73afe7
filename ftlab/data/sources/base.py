"""The contract every dataset source keeps, stated once here.

A source turns original files (or, failing those, a hub dataset) into a `datasets.DatasetDict` with
the splits `SPLITS` and columns `text`, optionally `text_pair`, and `label` (int class id, float
score, or a list of 0/1 floats for multi-label), plus the `TaskSpec`. Sources parse the files
themselves (parsing.py) so that a bad row is reported with file and line.

Identity: `name` (in messages), `hub_id` (the fallback, or None) and `file_format` (one line, in
errors) are declared on the class; a source whose identity depends on a setting (a GLUE subset, a
few-shot k) declares them as properties of that setting, never assigns them in `__init__`. The
cache's identity, `fingerprint()`, is this base's: the class, `params()` and `content_digests()`.

The task: `task()` is known from the settings and the label-name files, without reading the data,
so the config checks can test `monitor` and `loss.*` against it before anything loads. A source
whose classes are its training file's labels (dataset=local) sets `task_needs_data = True`: its
`task()` reads that file, and the checks leave what needs the task to the run, once the data is read.

Settings are the constructor's keyword arguments and the keys of `conf/dataset/<name>.yaml`; a bad
one raises a `UserError` naming it as mounted at `dataset.` (built as another source's part, the
error is re-keyed to where that part's settings are: configs.py).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import datasets

from ftlab.data.task import TaskSpec
from ftlab.errors import DataFileMissing, UserError

SPLITS = ("train", "validation", "test")


@dataclass
class LoadedData:
    splits: datasets.DatasetDict
    task: TaskSpec
    origin: str  # the local folder or the hub id the data came from


class DataSource(ABC):
    """One dataset family. Subclasses declare `name`, `hub_id`, `file_format`, and implement the hooks."""

    name: str = ""
    hub_id: str | None = None
    file_format: str = ""
    task_needs_data: ClassVar[bool] = False  # True where `task()` must read a file (see the module docstring)

    def __init__(self, data_dir: str | None = None, validation_fraction: float = 0.1, split_seed: int = 2022):
        self.data_dir = Path(data_dir).expanduser().resolve() if data_dir else None
        if not 0.0 < validation_fraction < 1.0:
            raise UserError(
                f"dataset.validation_fraction={validation_fraction} must be between 0 and 1",
                "use e.g. dataset.validation_fraction=0.1",
            )
        self.validation_fraction = validation_fraction
        self.split_seed = split_seed

    # ---- hooks -------------------------------------------------------------------------------
    @abstractmethod
    def local_files(self) -> list[Path]:
        """Every original file this source reads, under `self.data_dir` (`under_data_dir`)."""

    @abstractmethod
    def load_local(self) -> datasets.DatasetDict:
        """Parse `local_files()` into the three splits, validating every row."""

    @abstractmethod
    def task(self) -> TaskSpec:
        """Task type and label names (without reading the data unless `task_needs_data`)."""

    def load_hub(self) -> datasets.DatasetDict:
        """Fallback for a user with internet and no local copy. Sources with a hub id override it."""
        raise NotImplementedError

    def params(self) -> dict:
        """Everything besides the files that changes the content (subset, text fields, split seed)."""
        return {"validation_fraction": self.validation_fraction, "split_seed": self.split_seed}

    def content_digests(self) -> Iterator[bytes]:
        """What the raw data is, for the fingerprint: each local file's name and bytes, else the hub
        id. A source built from others (few-shot, multi) gives their fingerprints instead."""
        if self.has_local():
            for path in self.local_files():
                yield path.name.encode()
                yield hashlib.sha256(path.read_bytes()).digest()
        else:
            yield f"hub:{self.hub_id}".encode()

    # ---- shared ------------------------------------------------------------------------------
    def under_data_dir(self, *parts: str) -> Path:
        """A path below `data_dir` (`<data_dir>` in messages when none is set)."""
        return (self.data_dir or Path("<data_dir>")).joinpath(*parts)

    def missing_files(self) -> list[Path]:
        return [p for p in self.local_files() if not p.is_file()]

    def has_local(self) -> bool:
        return self.data_dir is not None and not self.missing_files()

    def fingerprint(self) -> str:
        """Identity of the raw data: the source's class, its params and `content_digests()`."""
        h = hashlib.sha256(f"{type(self).__module__}.{type(self).__qualname__}|{sorted(self.params().items())}".encode())
        for digest in self.content_digests():
            h.update(digest)
        return h.hexdigest()

    def load(self) -> LoadedData:
        if self.has_local():
            splits, origin = self.load_local(), str(self.data_dir)
        else:
            splits, origin = self._load_hub_or_explain(), f"hub:{self.hub_id}"
        return LoadedData(self.checked_splits(splits), self.task(), origin)

    def checked_splits(self, splits: datasets.DatasetDict) -> datasets.DatasetDict:
        """Exactly `SPLITS`, none empty."""
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            raise RuntimeError(f"{self.name} source produced no split(s) {missing}")
        for split in SPLITS:
            if len(splits[split]) == 0:
                raise UserError(
                    f"dataset {self.name}: the {split} split is empty",
                    "check the data files and any filtering options of the dataset",
                )
        return datasets.DatasetDict({s: splits[s] for s in SPLITS})

    def _load_hub_or_explain(self) -> datasets.DatasetDict:
        expected = self.missing_files()[0] if self.data_dir else Path("<data_dir>") / self.name
        where = f"get the original files into {expected.parent}"
        if self.hub_id is None:
            raise DataFileMissing(expected, self.file_format, where)
        try:
            return self.load_hub()
        except Exception as exc:  # offline, unknown revision, ...: the local files are the real fix
            raise DataFileMissing(
                expected, self.file_format, f"{where} (the hub fallback {self.hub_id} failed: {type(exc).__name__})"
            ) from None

    # ---- helpers for subclasses ----------------------------------------------------------------
    def carve_validation(self, train: datasets.Dataset) -> tuple[datasets.Dataset, datasets.Dataset]:
        """Split a validation set off `train` with the fixed `split_seed` (stratification not assumed)."""
        parts = train.train_test_split(test_size=self.validation_fraction, seed=self.split_seed)
        return parts["train"], parts["test"]
