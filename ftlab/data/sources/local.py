"""Your own data by config only: `dataset=local dataset.train=train.csv dataset.test=test.csv`.

Files: CSV or TSV with a header row, or JSON Lines (one object per line); the format comes from the
extension (`.csv`; `.tsv`, `.tab`; `.jsonl`, `.ndjson`) unless `format=` is set. CSV and TSV use
CSV quoting (a field with the delimiter, a quote or a newline is wrapped in `"..."`, inner quotes
doubled); blank lines are skipped. Paths are relative to the directory you run in and are stored
absolute. `validation` is optional: without it, `validation_fraction` of train is carved off with
`split_seed`. `test` is required.

Columns: `text_column`, optional `text_pair_column`, `label_column`. Every text must be non-empty.
- `task_type=single_label`: a label is a string (or a JSON integer, read as its decimal string)
  matched exactly against `label_names`; without `label_names` the classes are the distinct labels of
  train, sorted (numerically when they are all integers, so 0..n-1 keep their ids). A validation or
  test label outside them is an error naming file, line and the known labels.
- `task_type=regression`: a label is a number (or a numeric string); `label_names` must be unset.
Multi-label (a list-valued label column, or several 0/1 columns) is not supported yet: it is one more
entry in `_LABEL_READERS` plus its `TaskSpec`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import datasets

from ftlab.data.sources._parsing import build, csv_records, jsonl_records, require_text
from ftlab.data.sources.base import DataSource, LoadedData
from ftlab.data.task import TaskSpec, classification, regression
from ftlab.errors import DataFileMissing, InvalidChoice, MalformedRow, UnknownLabel, UserError

FORMATS = {"csv": "csv", "tsv": "tsv", "tab": "tsv", "jsonl": "jsonl", "ndjson": "jsonl"}
TASK_TYPES = ("single_label", "regression")
FILE_SPLITS = ("train", "validation", "test")


class LocalSource(DataSource):
    name = "local"

    def __init__(
        self,
        train: str | None = None,
        test: str | None = None,
        validation: str | None = None,
        format: str | None = None,
        text_column: str = "text",
        text_pair_column: str | None = None,
        label_column: str = "label",
        label_names: list | None = None,
        task_type: str = "single_label",
        validation_fraction: float = 0.1,
        split_seed: int = 2022,
    ):
        super().__init__(None, validation_fraction, split_seed)
        for key, value in (("train", train), ("test", test)):
            if not value:
                raise UserError(f"dataset.{key} is required for dataset=local",
                                f"set dataset.{key}=<path to a .csv, .tsv or .jsonl file>")
        if format is not None and format not in ("csv", "tsv", "jsonl"):
            raise InvalidChoice("dataset.format", format, ("csv", "tsv", "jsonl", "null (from the extension)"))
        if task_type == "multi_label":
            raise UserError("dataset.task_type=multi_label is not supported by dataset=local yet",
                            "use single_label (one class per row) or regression")
        if task_type not in TASK_TYPES:
            raise InvalidChoice("dataset.task_type", task_type, TASK_TYPES)
        if label_names is not None and task_type == "regression":
            raise UserError("dataset.label_names is set for a regression dataset", "remove dataset.label_names")
        if label_names is not None:
            label_names = [str(n) for n in label_names]
            if not label_names or len(set(label_names)) != len(label_names):
                raise UserError(f"dataset.label_names={label_names} must be a non-empty list of distinct names",
                                "list each class once, e.g. dataset.label_names=[negative,positive]")
        self.columns = {"text": text_column, "text_pair": text_pair_column, "label": label_column}
        if label_column in (text_column, text_pair_column):
            raise UserError(f"dataset.label_column={label_column!r} is also a text column",
                            "name a separate label column")
        given = (("train", train), ("validation", validation), ("test", test))
        self.paths = {s: Path(p).expanduser().resolve() for s, p in given if p}  # relative to the current directory
        self.formats = {s: format or _format_of(p, s) for s, p in self.paths.items()}
        self.task_type = task_type
        self.label_names = tuple(label_names) if label_names is not None else None
        self._names: tuple[str, ...] | None = self.label_names
        self._train: tuple | None = None  # train as read, kept between task() and load_local()

    # ---- contract ------------------------------------------------------------------------------
    def local_files(self) -> list[Path]:
        return list(self.paths.values())

    def has_local(self) -> bool:
        return not self.missing_files()

    def params(self) -> dict:
        return {**super().params(), "splits": sorted(self.paths), "formats": self.formats, "columns": self.columns,
                "label_names": self.label_names, "task_type": self.task_type}

    def task(self) -> TaskSpec:
        if self.task_type == "regression":
            return regression()
        if self._names is None:  # the classes are train's labels: read them
            self._names = _sorted_labels(self._read_train()[2])
        return classification(self._names)

    def check_files(self) -> None:
        for split, path in self.paths.items():
            if not path.is_file():
                err = DataFileMissing(path, self.file_format_of(split), "")
                err.fix = (f"check dataset.{split}= (a relative path is taken from the directory you run in, "
                           f"{Path.cwd()})")
                raise err

    def load(self) -> LoadedData:
        self.check_files()
        loaded = super().load()
        loaded.origin = ", ".join(f"{s}={p}" for s, p in self.paths.items())
        return loaded

    def load_local(self) -> datasets.DatasetDict:
        train, self._train = self._read_train(), None
        if self._names is None and self.task_type == "single_label":
            self._names = _sorted_labels(train[2])
        out = {"train": self._build(train, "train")}
        for split in ("validation", "test"):
            if split in self.paths:
                out[split] = self._build(self._read(split), split)
        if "validation" not in out:
            if len(out["train"]) < 2:
                raise UserError(
                    f"{self.paths['train']} has {len(out['train'])} row(s): too few to carve a validation split",
                    "add rows to train or give dataset.validation=<file>",
                )
            out["train"], out["validation"] = self.carve_validation(out["train"])
        return datasets.DatasetDict(out)

    # ---- reading -------------------------------------------------------------------------------
    def file_format_of(self, split: str) -> str:
        cols = ", ".join(c for c in self.columns.values() if c)
        return {
            "csv": f"CSV with a header row naming the columns {cols}",
            "tsv": f"tab-separated with a header row naming the columns {cols}",
            "jsonl": "JSON Lines, one object {" + ", ".join(f'"{c}": ...' for c in cols.split(", ")) + "} per line",
        }[self.formats[split]]

    def _read_train(self) -> tuple:
        if self._train is None:
            self.check_files()
            self._train = self._read("train")
        return self._train

    def _read(self, split: str) -> tuple[list[str], list[str] | None, list, list[int], Path, str]:
        """(texts, pairs, raw labels, line numbers, path, format) of one split file, texts checked."""
        path, fmt = self.paths[split], self.file_format_of(split)
        reader = _read_jsonl if self.formats[split] == "jsonl" else _read_delimited
        texts, pairs, labels, lines = [], [] if self.columns["text_pair"] else None, [], []
        for line, row in reader(path, fmt, self.formats[split], [c for c in self.columns.values() if c]):
            texts.append(require_text(row[self.columns["text"]], path, line, self.columns["text"], fmt))
            if pairs is not None:
                pairs.append(require_text(row[self.columns["text_pair"]], path, line, self.columns["text_pair"], fmt))
            labels.append(_LABEL_READERS[self.task_type](row[self.columns["label"]], path, line, fmt))
            lines.append(line)
        if not labels:
            raise UserError(f"the {split} file {path} has no data rows (only a header or blank lines)",
                            f"check that dataset.{split} points at the complete file")
        return texts, pairs, labels, lines, path, fmt

    def _build(self, read: tuple, split: str) -> datasets.Dataset:
        texts, pairs, labels, lines, path, _ = read
        if self.task_type == "single_label":
            mapping = {name: i for i, name in enumerate(self._names)}
            labels = [mapping[y] if y in mapping else _unknown(y, path, line, self._names)
                      for y, line in zip(labels, lines)]
        return build(texts, labels, pairs, regression=self.task_type == "regression")


def _unknown(label: str, path: Path, line: int, known: tuple[str, ...]):
    raise UnknownLabel(path, line, label, known)


def _format_of(path: str, split: str) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        extension = f".{suffix}" if suffix else "(none)"
        raise UserError(f"cannot tell the format of dataset.{split}={path} from its extension {extension}",
                        "use a .csv, .tsv or .jsonl file, or set dataset.format=csv|tsv|jsonl")
    return FORMATS[suffix]


def _sorted_labels(labels: list[str]) -> tuple[str, ...]:
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=int))
    except ValueError:
        return tuple(sorted(distinct))


def _missing_column(path: Path, column: str, present: list[str]) -> UserError:
    return UserError(f"{path} has no column {column!r}; columns present: {', '.join(map(str, present)) or '(none)'}",
                     "set dataset.text_column / text_pair_column / label_column to the names in the file")


def _read_delimited(path: Path, fmt: str, kind: str, wanted: list[str]):
    delimiter = "," if kind == "csv" else "\t"
    header = None
    for line, row in csv_records(path, fmt, delimiter):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if header is None:
            header = [c.strip() for c in row]
            for column in wanted:
                if column not in header:
                    raise _missing_column(path, column, header)
            continue
        if len(row) != len(header):
            raise MalformedRow(path, line, f"expected {len(header)} fields (as in the header), found {len(row)}", fmt)
        yield line, dict(zip(header, row))
    if header is None:
        raise UserError(f"{path} is empty", "a header row naming the columns, then one row per example")


def _read_jsonl(path: Path, fmt: str, kind: str, wanted: list[str]):
    first = True
    for line, row in jsonl_records(path, fmt):
        for column in wanted:
            if column not in row:
                if first:
                    raise _missing_column(path, column, list(row))
                raise MalformedRow(path, line, f"no {column!r} field", fmt)
        first = False
        yield line, row


def _class_label(raw: object, path: Path, line: int, fmt: str) -> str:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if not isinstance(raw, str):
        raise MalformedRow(path, line, f"the label must be a string or an integer, got {json.dumps(raw)}", fmt)
    if not raw.strip():
        raise MalformedRow(path, line, "the label is empty", fmt)
    return raw.strip()


def _score(raw: object, path: Path, line: int, fmt: str) -> float:
    try:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ValueError
        value = float(raw)
    except ValueError:
        raise MalformedRow(path, line, f"the label {raw!r} is not a number (task_type=regression)", fmt) from None
    if not math.isfinite(value):
        raise MalformedRow(path, line, f"the label {raw!r} is not a finite number", fmt)
    return value


# task type -> reads one raw label (multi-label: a list of names, or several 0/1 columns, goes here)
_LABEL_READERS = {"single_label": _class_label, "regression": _score}
