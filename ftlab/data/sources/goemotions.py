"""GoEmotions (Demszky et al. 2020), the simplified version: multi-label emotions of Reddit comments.

Files: `goemotions/{train,dev,test}.tsv` (dev is the validation split) and `goemotions/emotions.txt`.
A split file has no header and 3 tab-separated fields per row: the text, the label ids separated by
commas (`8,20`), the comment id. A text with a `"` in it is written CSV-style (wrapped in quotes,
inner quotes doubled), so rows are read with CSV quoting. `emotions.txt` has the 28 names, one per
line, id = line - 1, with no newline after the last.

Every row is checked: 3 fields, a non-blank text (texts are kept as they are, leading and trailing
spaces included), at least one id, each an integer in 0..27, no id twice. `label` is the multi-hot
list of 28 floats. Hub fallback: `google-research-datasets/go_emotions`, config `simplified`.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from ftlab.data.sources.base import SPLITS, DataSource
from ftlab.data.sources.parsing import (
    build, csv_records, from_hub_split, multi_hot, read_lines, require_rows, require_text,
)
from ftlab.data.task import TaskSpec, multi_label
from ftlab.errors import MalformedRow, UserError

# the names emotions.txt ships with; used when the local files are absent (hub fallback)
LABELS = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
    "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief", "joy",
    "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)
FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
ROW_FORMAT = "`text<TAB>label ids separated by commas (e.g. 8,20)<TAB>comment id`, no header"
NAMES_FORMAT = "one emotion name per line, line 1 is id 0"


class GoEmotionsSource(DataSource):
    name = "goemotions"
    hub_id = "google-research-datasets/go_emotions"
    file_format = f"GoEmotions TSV: {ROW_FORMAT}"

    def __init__(self, data_dir: str | None = None, threshold: float = 0.5):
        super().__init__(data_dir)
        multi_label(LABELS, threshold)  # a bad dataset.threshold is reported now, not after loading
        self.threshold = threshold  # decides predictions only: not part of params() (the data is the same)

    def local_files(self) -> list[Path]:
        return [*(self.under_data_dir("goemotions", f) for f in FILES.values()), self.names_file()]

    def names_file(self) -> Path:
        return self.under_data_dir("goemotions", "emotions.txt")

    def label_names(self) -> tuple[str, ...]:
        """From emotions.txt when it is there, else the names it ships with."""
        path = self.names_file()
        return parse_names(path) if self.data_dir is not None and path.is_file() else LABELS

    def task(self) -> TaskSpec:
        return multi_label(self.label_names(), self.threshold)

    def load_local(self) -> datasets.DatasetDict:
        n = len(self.label_names())
        return datasets.DatasetDict({s: parse_split(path, n) for s, path in zip(FILES, self.local_files())})

    def load_hub(self) -> datasets.DatasetDict:
        raw = datasets.load_dataset(self.hub_id, "simplified")
        return datasets.DatasetDict(
            {s: from_hub_split(raw[s], "text", label_col="labels", multi_label=len(LABELS)) for s in SPLITS}
        )


def parse_names(path: Path) -> tuple[str, ...]:
    names = []
    for line_no, line in enumerate(read_lines(path, NAMES_FORMAT), start=1):
        name = line.strip()
        if not name:
            raise MalformedRow(path, line_no, "empty line (ids are line numbers, a gap would shift them)", NAMES_FORMAT)
        if name in names:
            raise MalformedRow(path, line_no, f"{name!r} is listed twice", NAMES_FORMAT)
        names.append(name)
    if not names:
        raise UserError(f"{path} lists no emotions", "restore emotions.txt from the GoEmotions repository")
    return tuple(names)


def parse_split(path: Path, num_labels: int) -> datasets.Dataset:
    texts, labels = [], []
    for line, row in csv_records(path, ROW_FORMAT, delimiter="\t"):
        if len(row) != 3:
            raise MalformedRow(path, line, f"expected 3 tab-separated fields, found {len(row)}", ROW_FORMAT)
        texts.append(require_text(row[0], path, line, "the text", ROW_FORMAT))
        labels.append(multi_hot(parse_ids(row[1], num_labels, path, line), num_labels))
    require_rows(len(texts), path)
    return build(texts, labels, multi_label=num_labels)


def parse_ids(field: str, num_labels: int, path: Path, line: int) -> list[int]:
    """The label ids of one row: comma-separated integers in 0..num_labels-1, at least one, none twice."""
    if not field.strip():
        raise MalformedRow(path, line, "no label id", ROW_FORMAT)
    ids = []
    for raw in field.split(","):
        raw = raw.strip()
        if not raw.isascii() or not raw.isdigit():
            raise MalformedRow(path, line, f"label id {raw!r} is not an integer", ROW_FORMAT)
        i = int(raw)
        if i >= num_labels:
            raise MalformedRow(path, line, f"label id {i} is out of range 0..{num_labels - 1} (emotions.txt)", ROW_FORMAT)
        if i in ids:
            raise MalformedRow(path, line, f"label id {i} occurs twice", ROW_FORMAT)
        ids.append(i)
    return ids
