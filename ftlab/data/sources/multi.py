"""Several datasets in one label space: `dataset=multi dataset.parts=[restaurant_sup,laptop_sup]`.

Each part is the name of another dataset config (configs.py), built with the same `data_dir` (and
checked like any `dataset=` choice). Class ids are offset per part in the order given and label
names are prefixed with the part name (`restaurant_sup:positive`, ..., `laptop_sup:positive`);
each split is the concatenation of the parts' splits, in part order. Only single-label parts can
be combined (a regression or multi-label part has no classes to offset).

Pair parts (SemEval: term + sentence) and single-text parts (ACL-ARC) cannot share one `text_pair`
column: an empty pair still adds a second segment and a separator, and Arrow cannot mix rows with
and without one. Mixing them is refused unless `mixed_pairs=join`, which folds every pair into one
text `text + pair_separator + text_pair`. The default separator ` [SEP] ` is the separator token of
BERT-family vocabularies (their tokenizers read it as that token, so the ids equal the pair
encoding's; only the segment ids differ); for RoBERTa-style tokenizers use `</s></s>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import datasets

from ftlab.data.sources.base import SPLITS, DataSource, LoadedData
from ftlab.data.sources.configs import named_source, require_single_label
from ftlab.data.sources.parsing import build
from ftlab.data.task import TaskSpec, classification
from ftlab.errors import InvalidChoice, InvalidValue, UserError

MIXED_PAIRS = ("error", "join")


class MultiSource(DataSource):
    file_format = "the files of each part"

    def __init__(
        self,
        parts: list | tuple = ("restaurant_sup", "laptop_sup"),
        data_dir: str | None = None,
        mixed_pairs: str = "error",
        pair_separator: str = " [SEP] ",
    ):
        super().__init__(data_dir)
        parts = list(parts)
        if not parts:
            raise InvalidValue("dataset.parts", parts, "a non-empty list of dataset config names")
        duplicates = sorted({p for p in parts if parts.count(p) > 1}, key=str)
        if duplicates:
            raise UserError(f"dataset.parts lists {', '.join(map(str, duplicates))} more than once",
                            "name each dataset once")
        if mixed_pairs not in MIXED_PAIRS:
            raise InvalidChoice("dataset.mixed_pairs", mixed_pairs, MIXED_PAIRS)
        self.part_names = parts
        self.mixed_pairs = mixed_pairs
        self.pair_separator = pair_separator
        self.parts = [named_source(p, data_dir, "dataset.parts") for p in parts]
        self.tasks = [
            require_single_label(s, f"dataset.parts: {p}", "combine only single-label datasets (drop that part)")
            for p, s in zip(parts, self.parts)
        ]

    @property
    def name(self) -> str:
        return "multi(" + "+".join(self.part_names) + ")"

    def local_files(self) -> list[Path]:
        return [f for part in self.parts for f in part.local_files()]

    def has_local(self) -> bool:
        return all(part.has_local() for part in self.parts)

    def task(self) -> TaskSpec:
        return classification(f"{p}:{label}" for p, t in zip(self.part_names, self.tasks) for label in t.label_names)

    def offsets(self) -> list[int]:
        out, total = [], 0
        for task in self.tasks:
            out.append(total)
            total += len(task.label_names)
        return out

    def params(self) -> dict:
        return {"parts": list(self.part_names), "mixed_pairs": self.mixed_pairs, "pair_separator": self.pair_separator}

    def content_digests(self) -> Iterator[bytes]:
        for part in self.parts:
            yield part.fingerprint().encode()

    def load(self) -> LoadedData:
        loaded = [part.load() for part in self.parts]
        return LoadedData(self._combine([x.splits for x in loaded]), self.task(),
                          "; ".join(f"{n}={x.origin}" for n, x in zip(self.part_names, loaded)))

    def load_local(self) -> datasets.DatasetDict:
        return self._combine([part.load_local() for part in self.parts])

    def _combine(self, parts: list[datasets.DatasetDict]) -> datasets.DatasetDict:
        with_pair = [n for n, s in zip(self.part_names, parts) if "text_pair" in s["train"].column_names]
        mixed = 0 < len(with_pair) < len(parts)
        if mixed and self.mixed_pairs == "error":
            single = [n for n in self.part_names if n not in with_pair]
            raise UserError(
                f"dataset.parts mixes text-pair datasets ({', '.join(with_pair)}) with single-text ones "
                f"({', '.join(single)})",
                f"combine only one kind, or set dataset.mixed_pairs=join to fold each pair into one text "
                f"'text{self.pair_separator}text_pair' (dataset.pair_separator)",
            )
        out = {}
        for split in SPLITS:
            text, pair, label = [], [], []
            for offset, splits in zip(self.offsets(), parts):
                cols = splits[split][:]
                if "text_pair" in cols and mixed:
                    text += [f"{t}{self.pair_separator}{p}" for t, p in zip(cols["text"], cols["text_pair"])]
                else:
                    text += cols["text"]
                    pair += cols.get("text_pair", [])
                label += [int(y) + offset for y in cols["label"]]
            out[split] = build(text, label, pair if with_pair and not mixed else None)
        return datasets.DatasetDict(out)
