"""Label readers of `dataset=local`: one raw cell (or several 0/1 cells) -> a checked label, and the
encoders that turn checked labels into class ids or multi-hot rows, naming file and line on an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from ftlab.data.sources.parsing import multi_hot
from ftlab.errors import MalformedRow, UnknownLabel

_FLAGS = {"0": 0.0, "1": 1.0, "false": 0.0, "true": 1.0}


def class_label(raw: object, path: Path, line: int, fmt: str) -> str:
    """single_label: a non-empty string, or a JSON integer read as its decimal string."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if not isinstance(raw, str):
        raise MalformedRow(path, line, f"the label must be a string or an integer, got {json.dumps(raw)}", fmt)
    if not raw.strip():
        raise MalformedRow(path, line, "the label is empty", fmt)
    return raw.strip()


def score(raw: object, path: Path, line: int, fmt: str) -> float:
    """regression: a finite number, or a string holding one."""
    try:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ValueError
        value = float(raw)
    except ValueError:
        raise MalformedRow(path, line, f"the label {raw!r} is not a number (task_type=regression)", fmt) from None
    if not math.isfinite(value):
        raise MalformedRow(path, line, f"the label {raw!r} is not a finite number", fmt)
    return value


def label_list(raw: object, separator: str | None, path: Path, line: int, fmt: str) -> tuple[str, ...]:
    """multi_label, one column: a JSON list of names (or integers), or (CSV/TSV, `separator` given) a
    string of names split on `separator` ("" = no label). Names are stripped; an empty name or a name
    twice is an error."""
    if isinstance(raw, str) and separator is not None:
        items: list = raw.split(separator) if raw.strip() else []
    elif isinstance(raw, list):
        items = raw
    else:
        raise MalformedRow(path, line, f"the label must be a list of label names (task_type=multi_label), "
                                       f"got {json.dumps(raw)}", fmt)
    names: list[str] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            raise MalformedRow(path, line, f"a label name must be a string or an integer, got {json.dumps(item)}", fmt)
        name = item.strip()
        if not name:
            raise MalformedRow(path, line, f"empty label name in {raw!r}", fmt)
        if name in names:
            raise MalformedRow(path, line, f"label {name!r} is listed twice", fmt)
        names.append(name)
    return tuple(names)


def flags(cells: dict[str, object], path: Path, line: int, fmt: str) -> list[float]:
    """multi_label, several columns: each cell 0 or 1 (a number, "0"/"1", true/false), in column order."""
    out = []
    for column, raw in cells.items():
        if isinstance(raw, bool):
            value = float(raw)
        elif isinstance(raw, (int, float)) and raw in (0, 1):
            value = float(raw)
        elif isinstance(raw, str) and raw.strip().lower() in _FLAGS:
            value = _FLAGS[raw.strip().lower()]
        else:
            raise MalformedRow(path, line, f"the label column {column!r} must be 0 or 1, got {json.dumps(raw)}", fmt)
        out.append(value)
    return out


def sorted_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """Distinct labels, sorted numerically when they are all integers (so 0..n-1 keep their ids)."""
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=int))
    except ValueError:
        return tuple(sorted(distinct))


def class_ids(labels: list[str], lines: list[int], names: tuple[str, ...], path: Path) -> list[int]:
    mapping = {name: i for i, name in enumerate(names)}
    return [mapping[y] if y in mapping else _unknown(y, path, line, names) for y, line in zip(labels, lines)]


def multi_hot_rows(labels: list[tuple[str, ...]], lines: list[int], names: tuple[str, ...], path: Path) -> list:
    mapping = {name: i for i, name in enumerate(names)}
    return [multi_hot([mapping[y] if y in mapping else _unknown(y, path, line, names) for y in row], len(names))
            for row, line in zip(labels, lines)]


def _unknown(label: str, path: Path, line: int, known: tuple[str, ...]):
    raise UnknownLabel(path, line, label, known)
