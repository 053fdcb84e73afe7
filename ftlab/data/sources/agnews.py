"""AG News (Zhang et al. 2015), built as the studies did from the 7600-row official test file.

File: `agnews_sup/test.csv`, no header, 3 quoted columns: class index 1-4, title, description; a literal
backslash stands for a newline (it becomes a space here). Only the test file is shipped, so the rows, in
file order, are split with `Dataset.train_test_split(test_size=test_fraction, seed=test_seed)` (0.1 and 2022
reproduce the studies' split, done the same way on the hub's `test` split), then validation is carved from
that train part with `validation_fraction` / `split_seed` like every other source.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from ftlab.data.sources.base import DataSource
from ftlab.data.sources.parsing import build, csv_records, from_hub_split, require_rows, require_text
from ftlab.data.task import TaskSpec, classification
from ftlab.errors import InvalidChoice, InvalidValue, MalformedRow, UnknownLabel

LABELS = ("World", "Sports", "Business", "Sci/Tech")  # class index 1..4 in the file (classes.txt)
TEXT_FIELDS = ("description", "title_description")
FILE_FORMAT = 'CSV without header: "class index 1-4","title","description"'
_NEWLINE = re.compile(r"\s*\\+\s*")  # one or more literal backslashes (= newlines) and the spaces around them


def clean(text: str) -> str:
    return _NEWLINE.sub(" ", text).strip()


class AgNewsSource(DataSource):
    name = "agnews_sup"
    hub_id = "fancyzhx/ag_news"
    file_format = FILE_FORMAT

    def __init__(
        self,
        data_dir: str | None = None,
        text_fields: str = "description",
        test_fraction: float = 0.1,
        test_seed: int = 2022,
        **kwargs,
    ):
        if text_fields not in TEXT_FIELDS:
            raise InvalidChoice("dataset.text_fields", text_fields, TEXT_FIELDS)
        if not 0.0 < test_fraction < 1.0:
            raise InvalidValue("dataset.test_fraction", test_fraction, "a fraction between 0 and 1")
        super().__init__(data_dir, **kwargs)
        self.text_fields = text_fields
        self.test_fraction = test_fraction
        self.test_seed = test_seed

    def local_files(self) -> list[Path]:
        return [self.under_data_dir("agnews_sup", "test.csv")]

    def task(self) -> TaskSpec:
        return classification(LABELS)

    def params(self) -> dict:
        return {
            **super().params(),
            "text_fields": self.text_fields,
            "test_fraction": self.test_fraction,
            "test_seed": self.test_seed,
        }

    def load_local(self) -> datasets.DatasetDict:
        return self._split(parse_file(self.local_files()[0], self.text_fields))

    def load_hub(self) -> datasets.DatasetDict:
        if self.text_fields != "title_description":
            raise NotImplementedError("the hub copy joins title and description into one text")
        return self._split(from_hub_split(datasets.load_dataset(self.hub_id, split="test"), "text", text_fn=clean))

    def _split(self, rows: datasets.Dataset) -> datasets.DatasetDict:
        parts = rows.train_test_split(test_size=self.test_fraction, seed=self.test_seed)
        train, validation = self.carve_validation(parts["train"])
        return datasets.DatasetDict({"train": train, "validation": validation, "test": parts["test"]})


def parse_file(path: Path, text_fields: str) -> datasets.Dataset:
    known = [f"{i} ({name})" for i, name in enumerate(LABELS, start=1)]
    mapping = {str(i): i - 1 for i in range(1, len(LABELS) + 1)}
    texts, labels = [], []
    for line, row in csv_records(path, FILE_FORMAT):
        if len(row) != 3:
            raise MalformedRow(path, line, f"expected 3 columns, found {len(row)}", FILE_FORMAT)
        raw_label, title, description = row
        if raw_label.strip() not in mapping:
            raise UnknownLabel(path, line, raw_label, known)
        title = require_text(clean(title), path, line, "title", FILE_FORMAT)
        description = require_text(clean(description), path, line, "description", FILE_FORMAT)
        texts.append(description if text_fields == "description" else f"{title} {description}")
        labels.append(mapping[raw_label.strip()])
    require_rows(len(labels), path)
    return build(texts, labels)
