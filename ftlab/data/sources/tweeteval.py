"""TweetEval (Barbieri et al. 2020): all 11 tasks (7 tasks, stance with 5 targets).

Files: `tweeteval/datasets/<task>/{train,val,test}_text.txt` with one tweet per line and
`..._labels.txt` with one integer label per line, paired line by line; `mapping.txt` gives
`id<TAB>name[<TAB>...]` (emoji: `id<TAB>emoji<TAB>description`, the emoji is the name, as on the hub).
`stance_<target>` lives in `tweeteval/datasets/stance/<target>/` and shares `stance/mapping.txt`.

Texts are stripped at both ends: the originals end in one or more spaces, the rebuilt
`sentiment/train_text.txt` and the hub copy were stripped. Empty tweets are kept, not rejected: the
official `hate` files have 8 empty lines (7 train, 1 val) that still carry a label, and dropping them
would shift the published split sizes.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from ftlab.data.sources.base import SPLITS, DataSource
from ftlab.data.sources.parsing import build, from_hub_split, label_id, read_lines, require_rows
from ftlab.data.task import TaskSpec, classification
from ftlab.errors import InvalidChoice, MalformedRow, UserError

_STANCE = ("none", "against", "favor")
# names as in each mapping.txt; used when the local files are absent (hub fallback)
LABELS: dict[str, tuple[str, ...]] = {
    "sentiment": ("negative", "neutral", "positive"),
    "emoji": ("❤", "😍", "😂", "💕", "🔥", "😊", "😎", "✨", "💙", "😘",
              "📷", "🇺🇸", "☀", "💜", "😉", "💯", "😁", "🎄", "📸", "😜"),
    "emotion": ("anger", "joy", "optimism", "sadness"),
    "hate": ("not-hate", "hate"),
    "irony": ("non_irony", "irony"),
    "offensive": ("not-offensive", "offensive"),
    **{f"stance_{t}": _STANCE for t in ("abortion", "atheism", "climate", "feminist", "hillary")},
}
SUBSETS = tuple(LABELS)
FILE_STEMS = {"train": "train", "validation": "val", "test": "test"}  # <stem>_text.txt, <stem>_labels.txt
TEXT_FORMAT = "one tweet per line, paired line by line with <split>_labels.txt"
LABEL_FORMAT = "one integer class id per line (see mapping.txt)"
MAPPING_FORMAT = "one `id<TAB>name` per line, ids 0, 1, 2, ... in order"


class TweetEvalSource(DataSource):
    hub_id = "cardiffnlp/tweet_eval"
    file_format = f"TweetEval text files: {TEXT_FORMAT}"

    def __init__(self, data_dir: str | None = None, subset: str = "sentiment", **kwargs):
        if subset not in LABELS:
            raise InvalidChoice("dataset.subset", subset, SUBSETS)
        super().__init__(data_dir, **kwargs)
        self.subset = subset

    @property
    def name(self) -> str:
        return f"tweeteval_{self.subset}"

    # ---- files ---------------------------------------------------------------------------------
    def _task_dir(self) -> Path:
        root = self.under_data_dir("tweeteval", "datasets")
        if self.subset.startswith("stance_"):
            return root / "stance" / self.subset.removeprefix("stance_")
        return root / self.subset

    def _mapping_file(self) -> Path:
        task_dir = self._task_dir()
        return (task_dir.parent if self.subset.startswith("stance_") else task_dir) / "mapping.txt"

    def _split_files(self, split: str) -> tuple[Path, Path]:
        stem = FILE_STEMS[split]
        return self._task_dir() / f"{stem}_text.txt", self._task_dir() / f"{stem}_labels.txt"

    def local_files(self) -> list[Path]:
        return [*(p for split in SPLITS for p in self._split_files(split)), self._mapping_file()]

    def params(self) -> dict:
        return {**super().params(), "subset": self.subset}

    # ---- content -------------------------------------------------------------------------------
    def label_names(self) -> tuple[str, ...]:
        """From mapping.txt when it is there, else the names it ships with."""
        mapping = self._mapping_file()
        return parse_mapping(mapping) if self.data_dir is not None and mapping.is_file() else LABELS[self.subset]

    def task(self) -> TaskSpec:
        return classification(self.label_names())

    def load_local(self) -> datasets.DatasetDict:
        names = self.label_names()
        return datasets.DatasetDict({split: parse_split(*self._split_files(split), names) for split in SPLITS})

    def load_hub(self) -> datasets.DatasetDict:
        raw = datasets.load_dataset(self.hub_id, self.subset)
        return datasets.DatasetDict({s: from_hub_split(raw[s], "text", text_fn=str.strip) for s in SPLITS})


def parse_mapping(path: Path) -> tuple[str, ...]:
    names = []
    for line_no, line in enumerate(read_lines(path, MAPPING_FORMAT), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[1].strip():
            raise MalformedRow(path, line_no, "expected `id<TAB>name`", MAPPING_FORMAT)
        if fields[0].strip() != str(len(names)):
            raise MalformedRow(path, line_no, f"expected id {len(names)}, found {fields[0]!r}", MAPPING_FORMAT)
        names.append(fields[1].strip())
    if not names:
        raise UserError(f"{path} lists no labels", "restore mapping.txt from the TweetEval repository")
    return tuple(names)


def parse_split(text_path: Path, label_path: Path, names: tuple[str, ...]) -> datasets.Dataset:
    texts = read_lines(text_path, TEXT_FORMAT)
    raw_labels = read_lines(label_path, LABEL_FORMAT)
    if len(texts) != len(raw_labels):
        raise UserError(
            f"{text_path} has {len(texts)} lines but {label_path} has {len(raw_labels)}",
            "the two files pair line by line: restore the one that was truncated or has extra lines",
        )
    mapping = {str(i): i for i in range(len(names))}
    known = [f"{i} ({name})" for i, name in enumerate(names)]
    labels = [
        mapping[raw] if raw in mapping else label_id(raw.strip(), mapping, label_path, line_no, known)
        for line_no, raw in enumerate(raw_labels, start=1)
    ]
    require_rows(len(labels), text_path)
    return build([t.strip() for t in texts], labels)
