"""ACL-ARC citation intent (Jurgens et al. 2018), the SciBERT / Don't Stop Pretraining version.

Files: `acl_sup/{train,dev,test}.jsonl`, one JSON object per line `{"text", "label", "metadata"}`.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from ftlab.data.sources.base import DataSource
from ftlab.data.sources.parsing import build, jsonl_records, label_id, require_rows, require_text
from ftlab.data.task import TaskSpec, classification
from ftlab.errors import MalformedRow

LABELS = ("Background", "CompareOrContrast", "Extends", "Future", "Motivation", "Uses")
FILES = {"train": "train.jsonl", "validation": "dev.jsonl", "test": "test.jsonl"}
FILE_FORMAT = 'JSON Lines, one {"text": str, "label": ' + "|".join(LABELS) + "} per line"


class AclArcSource(DataSource):
    name = "acl_sup"
    hub_id = "hrithikpiyush/acl-arc"
    file_format = FILE_FORMAT

    def local_files(self) -> list[Path]:
        return [self.under_data_dir("acl_sup", f) for f in FILES.values()]

    def task(self) -> TaskSpec:
        return classification(LABELS)

    def load_local(self) -> datasets.DatasetDict:
        return datasets.DatasetDict({split: parse_file(path) for split, path in zip(FILES, self.local_files())})

    def load_hub(self) -> datasets.DatasetDict:
        """Best effort: the hub copy's column names and split names are not guaranteed."""
        raw = datasets.load_dataset(self.hub_id)
        names = {"train": "train", "validation": "validation" if "validation" in raw else "dev", "test": "test"}
        out = {}
        for split, hub_split in names.items():
            ds = raw[hub_split]
            text_col = next(c for c in ("text", "cleaned_cite_text", "string") if c in ds.column_names)
            label_col = next(c for c in ("label", "intent") if c in ds.column_names)
            feature = ds.features[label_col]
            hub_names = feature.names if isinstance(feature, datasets.ClassLabel) else None

            def to_id(x, hub_names=hub_names):
                if hub_names is not None:
                    x = hub_names[x]
                return LABELS.index(x) if isinstance(x, str) else int(x)  # ints: assumed in LABELS order

            out[split] = build(list(ds[text_col]), [to_id(x) for x in ds[label_col]])
        return datasets.DatasetDict(out)


def parse_file(path: Path) -> datasets.Dataset:
    mapping = {name: i for i, name in enumerate(LABELS)}
    texts, labels = [], []
    for line_no, row in jsonl_records(path, FILE_FORMAT):
        for field in ("text", "label"):
            if field not in row:
                raise MalformedRow(path, line_no, f"no {field!r} field", FILE_FORMAT)
        texts.append(require_text(row["text"], path, line_no, "text", FILE_FORMAT))
        labels.append(label_id(row["label"], mapping, path, line_no, LABELS))
    require_rows(len(labels), path)
    return build(texts, labels)
