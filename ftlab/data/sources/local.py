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
- `task_type=multi_label` (any number of labels per row, `threshold` decides a prediction), two forms:
  - one `label_column` holding the row's labels: in JSON Lines a list of names (or integers),
    `[]` for none; in CSV/TSV a string split on `label_separator` (default ",", so quote the field:
    `"joy,anger"`), "" for none. Names are matched against `label_names`, or, when unset, the
    sorted distinct names of train (numerically when all integers). An unknown name, an empty name
    (`a,,b`) or a name twice in a row is an error naming file and line.
  - several 0/1 columns: `label_column=[joy,anger]`; each cell 0 or 1 (also "0"/"1", true/false);
    the label names are the column names (`label_names` must be unset).
  `label` is a multi-hot list of num_labels floats.
Label readers and encoders live in `_labels.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import datasets

from ftlab.data.sources import _labels
from ftlab.data.sources.base import DataSource, LoadedData
from ftlab.data.sources.parsing import build, csv_records, jsonl_records, require_text
from ftlab.data.task import TaskSpec, classification, multi_label, regression
from ftlab.errors import DataFileMissing, InvalidChoice, MalformedRow, UserError

FORMATS = {"csv": "csv", "tsv": "tsv", "tab": "tsv", "jsonl": "jsonl", "ndjson": "jsonl"}
TASK_TYPES = ("single_label", "regression", "multi_label")


class LocalSource(DataSource):
    name = "local"
    task_needs_data = True  # without label_names, the classes are the train file's labels (base.py: the task)

    def __init__(
        self,
        train: str | None = None,
        test: str | None = None,
        validation: str | None = None,
        format: str | None = None,
        text_column: str = "text",
        text_pair_column: str | None = None,
        label_column: str | list[str] = "label",
        label_names: list | None = None,
        task_type: str = "single_label",
        label_separator: str = ",",
        threshold: float = 0.5,
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
        if task_type not in TASK_TYPES:
            raise InvalidChoice("dataset.task_type", task_type, TASK_TYPES)
        if label_names is not None and task_type == "regression":
            raise UserError("dataset.label_names is set for a regression dataset", "remove dataset.label_names")
        if label_names is not None:
            label_names = [str(n) for n in label_names]
            if not label_names or len(set(label_names)) != len(label_names):
                raise UserError(f"dataset.label_names={label_names} must be a non-empty list of distinct names",
                                "list each class once, e.g. dataset.label_names=[negative,positive]")
        self.label_columns = _label_columns(label_column, task_type, label_names)
        self.flag_columns = not isinstance(label_column, str)  # a list: 0/1 columns, even a list of one
        if not isinstance(label_separator, str) or not label_separator:
            raise UserError(f"dataset.label_separator={label_separator!r} must be a non-empty string",
                            'use e.g. dataset.label_separator="," or "|"')
        multi_label(["_"], threshold)  # a bad dataset.threshold is reported now
        self.columns = {"text": text_column, "text_pair": text_pair_column,
                        "label": list(self.label_columns) if self.flag_columns else label_column}
        for column in self.label_columns:
            if column in (text_column, text_pair_column):
                raise UserError(f"dataset.label_column={column!r} is also a text column", "name a separate label column")
        given = (("train", train), ("validation", validation), ("test", test))
        self.paths = {s: Path(p).expanduser().resolve() for s, p in given if p}  # relative to the current directory
        self.formats = {s: format or _format_of(p, s) for s, p in self.paths.items()}
        self.task_type = task_type
        self.label_separator = label_separator
        self.threshold = threshold  # decides predictions only: not part of params()
        self.label_names = tuple(label_names) if label_names is not None else None
        self._names: tuple[str, ...] | None = self.label_columns if self.flag_columns else self.label_names
        self._train: tuple | None = None  # train as read, kept between task() and load_local()

    # ---- contract ------------------------------------------------------------------------------
    def local_files(self) -> list[Path]:
        return list(self.paths.values())

    def has_local(self) -> bool:
        return not self.missing_files()

    def params(self) -> dict:
        return {**super().params(), "splits": sorted(self.paths), "formats": self.formats, "columns": self.columns,
                "label_names": self.label_names, "task_type": self.task_type,
                **({"label_separator": self.label_separator} if self.task_type == "multi_label" else {})}

    def task(self) -> TaskSpec:
        if self.task_type == "regression":
            return regression()
        if self._names is None:  # the classes are train's labels: read them
            self._names = self._train_names(self._read_train()[2])
        if self.task_type == "multi_label":
            return multi_label(self._names, self.threshold)
        return classification(self._names)

    def _train_names(self, labels: list) -> tuple[str, ...]:
        if self.task_type == "single_label":
            return _labels.sorted_labels(labels)
        names = _labels.sorted_labels(name for row in labels for name in row)
        if not names:
            raise UserError(f"no row of {self.paths['train']} has a label, so there are no label names",
                            "label the rows, or list the names with dataset.label_names=[...]")
        return names

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
        if self._names is None and self.task_type != "regression":
            self._names = self._train_names(train[2])
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
    def _wanted(self) -> list[str]:
        return [c for c in (self.columns["text"], self.columns["text_pair"], *self.label_columns) if c]

    def file_format_of(self, split: str) -> str:
        cols = ", ".join(self._wanted())
        kind = self.formats[split]
        out = {
            "csv": f"CSV with a header row naming the columns {cols}",
            "tsv": f"tab-separated with a header row naming the columns {cols}",
            "jsonl": "JSON Lines, one object {" + ", ".join(f'"{c}": ...' for c in self._wanted()) + "} per line",
        }[kind]
        if self.task_type != "multi_label":
            return out
        if self.flag_columns:
            return f"{out}, each of {', '.join(self.label_columns)} 0 or 1"
        if kind == "jsonl":
            return f"{out}, {self.label_columns[0]!r} a list of label names"
        return f"{out}, {self.label_columns[0]!r} label names separated by {self.label_separator!r} (empty: none)"

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
        for line, row in reader(path, fmt, self.formats[split], self._wanted()):
            texts.append(require_text(row[self.columns["text"]], path, line, self.columns["text"], fmt))
            if pairs is not None:
                pairs.append(require_text(row[self.columns["text_pair"]], path, line, self.columns["text_pair"], fmt))
            labels.append(self._label(row, path, line, fmt, self.formats[split]))
            lines.append(line)
        if not labels:
            raise UserError(f"the {split} file {path} has no data rows (only a header or blank lines)",
                            f"check that dataset.{split} points at the complete file")
        return texts, pairs, labels, lines, path, fmt

    def _label(self, row: dict, path: Path, line: int, fmt: str, kind: str):
        """One row's checked label: a class name, a score, a tuple of names, or a multi-hot list."""
        if self.task_type == "regression":
            return _labels.score(row[self.label_columns[0]], path, line, fmt)
        if self.task_type == "single_label":
            return _labels.class_label(row[self.label_columns[0]], path, line, fmt)
        if self.flag_columns:
            return _labels.flags({c: row[c] for c in self.label_columns}, path, line, fmt)
        separator = None if kind == "jsonl" else self.label_separator  # JSON Lines: a list, never a split string
        return _labels.label_list(row[self.label_columns[0]], separator, path, line, fmt)

    def _build(self, read: tuple, split: str) -> datasets.Dataset:
        texts, pairs, labels, lines, path, _ = read
        if self.task_type == "single_label":
            labels = _labels.class_ids(labels, lines, self._names, path)
        elif self.task_type == "multi_label" and not self.flag_columns:
            labels = _labels.multi_hot_rows(labels, lines, self._names, path)
        multi = len(self._names) if self.task_type == "multi_label" else None
        return build(texts, labels, pairs, regression=self.task_type == "regression", multi_label=multi)


def _label_columns(label_column, task_type: str, label_names) -> tuple[str, ...]:
    """The label column(s) as a tuple: one name, or several 0/1 columns (multi_label only)."""
    if isinstance(label_column, str):
        return (label_column,)
    columns = list(label_column) if isinstance(label_column, Sequence) else None  # a Hydra ListConfig too
    if not columns or not all(isinstance(c, str) and c for c in columns) or len(set(columns)) != len(columns):
        raise UserError(f"dataset.label_column={label_column!r} must be a column name or a non-empty list of "
                        "distinct column names", "e.g. dataset.label_column=label or dataset.label_column=[joy,anger]")
    if task_type != "multi_label":
        raise UserError(f"dataset.label_column is a list of columns ({', '.join(columns)}) but "
                        f"dataset.task_type={task_type}",
                        "0/1 label columns need dataset.task_type=multi_label; else name one label column")
    if label_names is not None:
        raise UserError("dataset.label_names is set together with a list of 0/1 label columns: the label names are "
                        "the column names", "remove dataset.label_names")
    return tuple(columns)


def _format_of(path: str, split: str) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        extension = f".{suffix}" if suffix else "(none)"
        raise UserError(f"cannot tell the format of dataset.{split}={path} from its extension {extension}",
                        "use a .csv, .tsv or .jsonl file, or set dataset.format=csv|tsv|jsonl")
    return FORMATS[suffix]


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
