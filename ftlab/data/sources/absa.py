"""SemEval-2014 Task 4 aspect-term polarity (restaurants, laptops), JSON version of Xu et al.

Files: `restaurant_sup/SemEval14-res/` or `laptop_sup/SemEval14-laptop/`, each with `train.json`,
`dev.json`, `test_full.json` (`test_contra.json` is not used). Each file is one JSON object
`{id: {"id", "sentence", "term", "polarity", "contra"}}`; conflict polarity is already removed.
The input is a pair: `text` = aspect term, `text_pair` = sentence.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets

from ftlab.data.sources.base import DataSource
from ftlab.data.sources.parsing import build, label_id, read_text, require_rows, require_text
from ftlab.data.task import TaskSpec, classification
from ftlab.errors import InvalidChoice, MalformedRow

LABELS = ("negative", "neutral", "positive")
DOMAINS = {"restaurant": "restaurant_sup/SemEval14-res", "laptop": "laptop_sup/SemEval14-laptop"}
FILES = {"train": "train.json", "validation": "dev.json", "test": "test_full.json"}
FILE_FORMAT = 'a JSON object {id: {"sentence": str, "term": str, "polarity": negative|neutral|positive, ...}}'


class SemEvalAbsaSource(DataSource):
    file_format = FILE_FORMAT

    def __init__(self, data_dir: str | None = None, domain: str = "restaurant", **kwargs):
        if domain not in DOMAINS:
            raise InvalidChoice("dataset.domain", domain, DOMAINS)
        super().__init__(data_dir, **kwargs)
        self.domain = domain

    @property
    def name(self) -> str:
        return f"{self.domain}_sup"

    def local_files(self) -> list[Path]:
        return [self.under_data_dir(DOMAINS[self.domain], f) for f in FILES.values()]

    def task(self) -> TaskSpec:
        return classification(LABELS)

    def params(self) -> dict:
        return {**super().params(), "domain": self.domain}

    def load_local(self) -> datasets.DatasetDict:
        return datasets.DatasetDict({split: parse_file(path) for split, path in zip(FILES, self.local_files())})


def parse_file(path: Path) -> datasets.Dataset:
    text = read_text(path, FILE_FORMAT)
    try:
        # pairs, not a dict, so that a duplicated id is seen rather than silently dropped
        records = json.loads(text, object_pairs_hook=lambda pairs: pairs)
    except json.JSONDecodeError as exc:
        raise MalformedRow(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})", FILE_FORMAT) from None
    if not isinstance(records, list) or (records and not isinstance(records[0], tuple)):
        raise MalformedRow(path, 1, "the top level must be a JSON object {id: record}", FILE_FORMAT)
    mapping = {name: i for i, name in enumerate(LABELS)}
    terms, sentences, labels = [], [], []
    seen: set[str] = set()
    for (key, record), line in zip(records, _key_lines(text, [k for k, _ in records])):
        if key in seen:
            raise MalformedRow(path, line, f"duplicate id {key!r}", FILE_FORMAT)
        seen.add(key)
        if not isinstance(record, list) or not all(isinstance(p, tuple) for p in record):
            # a JSON object comes back as a list of (key, value) tuples, an array as a list of values
            raise MalformedRow(path, line, f"record {key!r} is not a JSON object", FILE_FORMAT)
        fields = dict(record)
        for field in ("term", "sentence", "polarity"):
            if field not in fields:
                raise MalformedRow(path, line, f"record {key!r} has no {field!r}", FILE_FORMAT)
        terms.append(require_text(fields["term"], path, line, "term", FILE_FORMAT))
        sentences.append(require_text(fields["sentence"], path, line, "sentence", FILE_FORMAT))
        labels.append(label_id(fields["polarity"], mapping, path, line, LABELS))
    require_rows(len(labels), path)
    return build(terms, labels, text_pair=sentences)


def _key_lines(text: str, keys: list[str]) -> list[int]:
    """1-based line of each top-level key, found in order (the records appear in key order)."""
    lines, pos, line = [], 0, 1
    for key in keys:
        match = re.compile(re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:").search(text, pos)
        if match is not None:
            line += text.count("\n", pos, match.start())
            pos = match.start()
        lines.append(line)
    return lines
