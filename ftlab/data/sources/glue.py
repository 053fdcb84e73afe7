"""GLUE single-sentence and pair tasks from the original TSVs: sst2, rte, mrpc, cola, stsb, wnli, qnli.

Files: `glue/<TASK>/{train,dev}.tsv` (output of `download_glue_data.py`). GLUE test labels are hidden, so
`test` = dev.tsv and `validation` is carved from train.tsv (`validation_fraction`, `split_seed`).
The TSVs are read without any quote handling (what `csv.QUOTE_NONE` does: split on tabs only), because
texts contain unbalanced `"`; every row must have exactly the task's number of columns.
The shared data holds only QNLI dev.tsv: qnli then needs train.tsv from elsewhere (or the hub).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets

from ftlab.data.sources.base import DataSource
from ftlab.data.sources.parsing import build, from_hub_split, label_id, read_lines, require_rows, require_text
from ftlab.data.task import TaskSpec, classification, regression
from ftlab.errors import DataFileMissing, InvalidChoice, MalformedRow

_BINARY = {"0": 0, "1": 1}
_NLI = {"entailment": 0, "not_entailment": 1}


@dataclass(frozen=True)
class GlueTask:
    folder: str
    header: tuple[str, ...] | None  # None: the file has no header line
    ncols: int
    text: int  # column indices
    pair: int | None
    label: int
    raw_labels: dict[str, int] | None  # None: regression score
    names: tuple[str, ...]
    hub_text: str
    hub_pair: str | None = None
    extra_metrics: tuple[str, ...] = ()
    monitor: str = "val/macro_f1"

    def file_format(self) -> str:
        cols = " ".join(self.header) if self.header else "source label original_label sentence (no header)"
        return f"tab-separated, {self.ncols} columns, no quoting: {cols}"


_PAIR_HEADER = ("index", "sentence1", "sentence2", "label")
TASKS: dict[str, GlueTask] = {
    "sst2": GlueTask("SST-2", ("sentence", "label"), 2, 0, None, 1, _BINARY, ("negative", "positive"), "sentence"),
    "rte": GlueTask("RTE", _PAIR_HEADER, 4, 1, 2, 3, _NLI, ("entailment", "not_entailment"), "sentence1", "sentence2"),
    "mrpc": GlueTask(
        "MRPC", ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), 5, 3, 4, 0, _BINARY,
        ("not_equivalent", "equivalent"), "sentence1", "sentence2", extra_metrics=("f1",),
    ),
    "cola": GlueTask(
        "CoLA", None, 4, 3, None, 1, _BINARY, ("unacceptable", "acceptable"), "sentence",
        extra_metrics=("mcc",), monitor="val/mcc",
    ),
    "stsb": GlueTask(
        "STS-B",
        ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"),
        10, 7, 8, 9, None, ("score",), "sentence1", "sentence2",
    ),
    "wnli": GlueTask("WNLI", _PAIR_HEADER, 4, 1, 2, 3, _BINARY, ("not_entailment", "entailment"), "sentence1", "sentence2"),
    "qnli": GlueTask(
        "QNLI", ("index", "question", "sentence", "label"), 4, 1, 2, 3, _NLI, ("entailment", "not_entailment"),
        "question", "sentence",
    ),
}
SUBSETS = tuple(TASKS)


class GlueSource(DataSource):
    hub_id = "nyu-mll/glue"

    def __init__(self, data_dir: str | None = None, subset: str = "sst2", **kwargs):
        if subset not in TASKS:
            raise InvalidChoice("dataset.subset", subset, SUBSETS)
        super().__init__(data_dir, **kwargs)
        self.subset = subset
        self.spec = TASKS[subset]

    @property
    def name(self) -> str:
        return f"glue_{self.subset}"

    @property
    def file_format(self) -> str:
        return self.spec.file_format()

    def local_files(self) -> list[Path]:
        return [self.under_data_dir("glue", self.spec.folder, f) for f in ("train.tsv", "dev.tsv")]

    def params(self) -> dict:
        return {**super().params(), "subset": self.subset}

    def task(self) -> TaskSpec:
        if self.spec.raw_labels is None:
            return regression()
        return classification(self.spec.names, self.spec.extra_metrics, self.spec.monitor)

    def load_local(self) -> datasets.DatasetDict:
        train_path, dev_path = self.local_files()
        return self._splits(parse_file(train_path, self.spec), parse_file(dev_path, self.spec))

    def load_hub(self) -> datasets.DatasetDict:
        raw = datasets.load_dataset(self.hub_id, self.subset)
        spec = self.spec
        regress = spec.raw_labels is None
        train, dev = (
            from_hub_split(raw[s], spec.hub_text, spec.hub_pair, regression=regress) for s in ("train", "validation")
        )
        return self._splits(train, dev)

    def _splits(self, train: datasets.Dataset, dev: datasets.Dataset) -> datasets.DatasetDict:
        train, validation = self.carve_validation(train)
        return datasets.DatasetDict({"train": train, "validation": validation, "test": dev})

    def _load_hub_or_explain(self) -> datasets.DatasetDict:
        try:
            return super()._load_hub_or_explain()
        except DataFileMissing:
            train_path, dev_path = self.local_files()
            if self.subset != "qnli" or self.data_dir is None or not dev_path.is_file():
                raise
            raise DataFileMissing(
                train_path,
                self.file_format,
                f"only QNLI dev.tsv is shipped (train.tsv is about 28 MB): put the GLUE QNLI train.tsv "
                f"(from download_glue_data.py) into {train_path.parent}, or run with internet access so that "
                f"the hub copy {self.hub_id}/qnli is used",
            ) from None


def parse_file(path: Path, spec: GlueTask) -> datasets.Dataset:
    fmt = spec.file_format()
    lines = read_lines(path, fmt)
    start = 0
    if spec.header is not None:
        found = tuple(c.strip() for c in lines[0].split("\t")) if lines else ()
        if found != spec.header:
            raise MalformedRow(path, 1, f"expected the header {' '.join(spec.header)!r}, found {found!r}", fmt)
        start = 1
    texts, pairs, labels = [], [] if spec.pair is not None else None, []
    known = list(spec.raw_labels) if spec.raw_labels is not None else None
    for line_no in range(start + 1, len(lines) + 1):
        row = lines[line_no - 1].split("\t")
        if len(row) != spec.ncols:
            raise MalformedRow(path, line_no, f"expected {spec.ncols} tab-separated columns, found {len(row)}", fmt)
        texts.append(require_text(row[spec.text], path, line_no, "text", fmt))
        if pairs is not None:
            pairs.append(require_text(row[spec.pair], path, line_no, "second text", fmt))
        raw = row[spec.label].strip()
        if spec.raw_labels is not None:
            labels.append(label_id(raw, spec.raw_labels, path, line_no, known))
        else:
            labels.append(_score(raw, path, line_no, fmt))
    require_rows(len(labels), path)
    return build(texts, labels, pairs, regression=spec.raw_labels is None)


def _score(raw: str, path: Path, line: int, fmt: str) -> float:
    try:
        score = float(raw)
    except ValueError:
        raise MalformedRow(path, line, f"score {raw!r} is not a number", fmt) from None
    if not 0.0 <= score <= 5.0:
        raise MalformedRow(path, line, f"score {score} is outside 0-5", fmt)
    return score
