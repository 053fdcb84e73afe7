"""Helpers for every source (also one outside ftlab): strict UTF-8 reading, line splitting, row checks, schema.

Every source builds plain Python lists and turns them into a `datasets.Dataset` with one fixed schema
(`text`, optional `text_pair`, `label` as int64 class id, float32 score, or a fixed-length list of
num_labels float32 0.0/1.0 for multi-label), so that all sources agree.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import datasets

from ftlab.errors import MalformedRow, UnknownLabel, UserError

TEXT = datasets.Value("string")
CLASS_ID = datasets.Value("int64")
SCORE = datasets.Value("float32")


def multi_hot_feature(num_labels: int) -> datasets.Sequence:
    """The multi-label `label` feature: exactly `num_labels` float32 values, 0.0 or 1.0."""
    return datasets.Sequence(SCORE, length=num_labels)


def multi_hot(ids: Iterable[int], num_labels: int) -> list[float]:
    """`num_labels` floats, 1.0 at each of `ids` (already checked to be in range) and 0.0 elsewhere."""
    row = [0.0] * num_labels
    for i in ids:
        row[i] = 1.0
    return row


def read_text(path: Path, fmt: str) -> str:
    """The whole file as text: strict UTF-8 (a leading BOM is dropped), CRLF turned into LF.

    Bytes that are not UTF-8 raise `MalformedRow` with the line they are on.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        decoded = exc.object  # after a BOM, positions are relative to the bytes that follow it
        line = decoded.count(b"\n", 0, exc.start) + 1
        bad = decoded[exc.start : exc.end].hex(" ")
        raise MalformedRow(path, line, f"not valid UTF-8 (byte(s) {bad})", fmt) from None
    return text.replace("\r\n", "\n") if "\r" in text else text


def csv_records(path: Path, fmt: str, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) of each CSV record; quoting errors name the line."""
    reader = csv.reader(io.StringIO(read_text(path, fmt), newline=""), delimiter=delimiter, strict=True)
    while True:
        line = reader.line_num + 1  # a quoted field may span lines: report where the record starts
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise MalformedRow(path, line, f"bad CSV quoting: {exc}", fmt) from None
        yield line, row


def jsonl_records(path: Path, fmt: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank JSON Lines row; bad JSON or a non-object names the line."""
    for line, raw in enumerate(read_lines(path, fmt), start=1):
        if not raw.strip():
            continue  # blank lines carry nothing in JSON Lines
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise MalformedRow(path, line, f"invalid JSON: {exc.msg} (column {exc.colno})", fmt) from None
        if not isinstance(row, dict):
            raise MalformedRow(path, line, "the line is not a JSON object", fmt)
        yield line, row


def read_lines(path: Path, fmt: str) -> list[str]:
    """The lines of a file, split on "\\n" only.

    `str.splitlines` is avoided on purpose: it also splits on U+2028, \\x0b, \\x1c ... which occur in tweets
    and would shift every later line. A final newline does not make an extra empty line.
    """
    lines = read_text(path, fmt).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def require_text(value: object, path: Path, line: int, field: str, fmt: str) -> str:
    """`value` if it is a non-blank string, else `MalformedRow`."""
    if not isinstance(value, str):
        raise MalformedRow(path, line, f"{field} must be a string, got {type(value).__name__}", fmt)
    if not value.strip():
        raise MalformedRow(path, line, f"{field} is empty", fmt)
    return value


def label_id(raw: object, mapping: Mapping[object, int], path: Path, line: int, known: Iterable[object]) -> int:
    """Class id of a raw label, else `UnknownLabel` listing `known`."""
    try:
        return mapping[raw]
    except (KeyError, TypeError):  # TypeError: unhashable JSON value (list, dict)
        raise UnknownLabel(path, line, raw, known) from None


def require_rows(n: int, path: Path) -> None:
    if n == 0:
        raise UserError(f"{path} has no data rows", "check that the file is complete (it may be truncated)")


def build(
    text: list[str],
    label: list,
    text_pair: list[str] | None = None,
    regression: bool = False,
    multi_label: int | None = None,
) -> datasets.Dataset:
    """A `Dataset` with the common schema; `text_pair` only for pair tasks. `multi_label=n`: each label
    is a multi-hot list of n floats (see `multi_hot`)."""
    columns: dict[str, list] = {"text": text}
    features: dict = {"text": TEXT}
    if text_pair is not None:
        columns["text_pair"] = text_pair
        features["text_pair"] = TEXT
    columns["label"] = label
    if multi_label is not None:
        features["label"] = multi_hot_feature(multi_label)
    else:
        features["label"] = SCORE if regression else CLASS_ID
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def from_hub_split(
    split: datasets.Dataset,
    text_col: str,
    pair_col: str | None = None,
    label_fn=None,
    text_fn=None,
    regression: bool = False,
    label_col: str = "label",
    multi_label: int | None = None,
) -> datasets.Dataset:
    """Map a hub split to the common schema (`label_fn` maps each raw label, `text_fn` each text).

    `multi_label=n`: each raw label is a list of class ids, turned into a multi-hot list of n floats.
    """
    text = list(split[text_col])
    if text_fn is not None:
        text = [text_fn(t) for t in text]
    pair = None
    if pair_col is not None:
        pair = list(split[pair_col])
        if text_fn is not None:
            pair = [text_fn(t) for t in pair]
    labels = list(split[label_col])
    if label_fn is not None:
        labels = [label_fn(x) for x in labels]
    if multi_label is not None:
        labels = [multi_hot(ids, multi_label) for ids in labels]
    return build(text, labels, pair, regression, multi_label)
