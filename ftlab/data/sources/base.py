"""The contract every dataset source keeps.

A source turns original files (or, failing those, a hub dataset) into a `datasets.DatasetDict` with
splits `train`, `validation`, `test` and columns `text`, optionally `text_pair`, and `label`
(int class id, float score, or a list of 0/1 floats for multi-label), plus the `TaskSpec`.
Sources parse the files themselves so that a bad row is reported with file and line.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

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
    """One dataset family. Subclasses set `name`, `hub_id`, `file_format`, and implement the hooks."""

    name: str = ""
    hub_id: str | None = None
    file_format: str = ""  # one line: the expected original format, shown in errors
    task_needs_data: bool = False  # True where `task()` must read a file (checked at composition otherwise)

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
        """Every original file this source reads, under `self.data_dir`."""

    @abstractmethod
    def load_local(self) -> datasets.DatasetDict:
        """Parse `local_files()` into the three splits, validating every row."""

    @abstractmethod
    def task(self) -> TaskSpec:
        """Task type and label names (known without reading the data)."""

    def load_hub(self) -> datasets.DatasetDict:
        """Fallback for a user with internet and no local copy. Sources with a hub id override it."""
        raise NotImplementedError

    def params(self) -> dict:
        """Everything besides the files that changes the content (subset, text fields, split seed)."""
        return {"validation_fraction": self.validation_fraction, "split_seed": self.split_seed}

    # ---- shared ------------------------------------------------------------------------------
    def missing_files(self) -> list[Path]:
        return [p for p in self.local_files() if not p.is_file()]

    def has_local(self) -> bool:
        return self.data_dir is not None and not self.missing_files()

    def fingerprint(self) -> str:
        """Identity of the raw data: source, params and the bytes of every local file (or the hub id)."""
        h = hashlib.sha256(f"{type(self).__module__}.{type(self).__qualname__}|{sorted(self.params().items())}".encode())
        if self.has_local():
            for path in self.local_files():
                h.update(path.name.encode())
                h.update(hashlib.sha256(path.read_bytes()).digest())
        else:
            h.update(f"hub:{self.hub_id}".encode())
        return h.hexdigest()

    def load(self) -> LoadedData:
        if self.has_local():
            splits, origin = self.load_local(), str(self.data_dir)
        else:
            splits, origin = self._load_hub_or_explain(), f"hub:{self.hub_id}"
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            raise RuntimeError(f"{self.name} source produced no split(s) {missing}")
        for split in SPLITS:
            if len(splits[split]) == 0:
                raise UserError(
                    f"dataset {self.name}: the {split} split is empty",
                    "check the data files and any filtering options of the dataset",
                )
        return LoadedData(datasets.DatasetDict({s: splits[s] for s in SPLITS}), self.task(), origin)

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
