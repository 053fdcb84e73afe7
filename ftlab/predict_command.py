"""`ftlab predict <run dir> (--input FILE | --text "..." [--text-pair "..."]) [--out FILE]`: a
trained run's model on new texts.

The run's classifier is `ftlab.load(run_dir)` (ftlab/classifier.py: which saved folder, how texts are
tokenized and batched). FILE: .csv, .tsv or .jsonl (one object per line) with a text column (`text`,
`--text-column`) and, for a pair dataset, a second one (`text_pair`, `--text-pair-column`). The output
(.jsonl, .csv or .tsv by --out's extension; jsonl on stdout without --out) has, per input in its
order, the text(s), the predicted label name(s) and id(s) and every label's probability (the value
for regression). Bad input ends with one `error:` line and its fix, exit 1, and no output file.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from ftlab.atomic import write_bytes
from ftlab.classifier import saved_folder, trained_on_pairs
from ftlab.errors import UserError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print its usage and exit 2
        raise UserError(f"ftlab predict: {message}",
                        'ftlab predict <run dir> (--input FILE | --text "..." [--text-pair "..."]) [--out FILE]')


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ftlab predict", description="a trained run's predictions on new texts")
    p.add_argument("run_dir", help="a completed run's folder (it holds results.json and model/)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="a .csv, .tsv or .jsonl file of texts")
    source.add_argument("--text", help="one text")
    p.add_argument("--text-pair", help="its second text (pair datasets)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--text-pair-column", default="text_pair")
    p.add_argument("--out", help="where to write (.jsonl, .csv, .tsv); stdout (jsonl) without it")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return p


# ---- the inputs ------------------------------------------------------------------------------
def read_text(file: Path) -> str:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise UserError(f"input file not found: {file}", "pass an existing .csv, .tsv or .jsonl file") from None
    except IsADirectoryError:
        raise UserError(f"--input {file} is a folder", "pass a .csv, .tsv or .jsonl file") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserError(f"{file} is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line})",
                        f"save it as UTF-8, e.g. iconv -f latin1 -t utf-8 {file.name} > utf8-{file.name}") from None


def read_rows(file: Path, text_column: str, pair_column: str, need_pair: bool | None) -> tuple[list, list | None]:
    """(texts, pairs or None) of an input file, every row checked."""
    kind = FORMATS.get(file.suffix.lower())
    if kind is None:
        raise UserError(f"--input {file}: unknown format {file.suffix or '(no extension)'}",
                        "name it .csv, .tsv or .jsonl")
    text = read_text(file)
    if kind == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise UserError(f"{file} line {number} is not JSON ({err})", "write one JSON object per line") from None
            if not isinstance(row, dict):
                raise UserError(f"{file} line {number} is not a JSON object", 'write {"text": "..."} per line')
            rows.append((number, row))
        columns = set().union(*(row.keys() for _, row in rows)) if rows else set()
    else:
        reader = csv.DictReader(io.StringIO(text), delimiter="," if kind == "csv" else "\t")
        columns = set(reader.fieldnames or [])
        try:
            rows = [(reader.line_num, row) for row in reader]
        except csv.Error as err:
            raise UserError(f"{file} line {reader.line_num}: {err}", f"write it as {kind}") from None
    if not rows:
        raise UserError(f"{file} has no rows", f"put one text per row, in a column named {text_column}")
    if text_column not in columns:
        raise UserError(f"{file} has no column {text_column!r} (it has: {', '.join(sorted(columns)) or 'none'})",
                        "name the text column with --text-column")
    has_pair = pair_column in columns
    if need_pair and not has_pair:
        raise UserError(f"{file} has no column {pair_column!r}: the run was trained on text pairs",
                        "add the second texts, or name their column with --text-pair-column")
    texts, pairs = [], []
    for number, row in rows:
        for column in (text_column, pair_column) if has_pair else (text_column,):
            if not isinstance(row.get(column), str):
                raise UserError(f"{file} line {number}: {column!r} is {'missing' if row.get(column) is None else 'not text'}",
                                f"give every row a text in {column!r}")
        texts.append(row[text_column])
        if has_pair:
            pairs.append(row[pair_column])
    return texts, pairs if has_pair else None


# ---- the output ------------------------------------------------------------------------------
def render(rows: list[dict], kind: str) -> str:
    if kind == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    flat = []
    for r in rows:
        line = {k: v for k, v in r.items() if k != "probs"}
        for key in ("label", "label_id"):
            if isinstance(line.get(key), list):
                line[key] = "|".join(map(str, line[key]))
        line.update({f"prob_{n}": p for n, p in (r.get("probs") or {}).items()})
        flat.append(line)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(flat[0]), delimiter="," if kind == "csv" else "\t",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()


def out_kind(out: Path) -> str:
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise UserError(f"--out {out}: unknown format {out.suffix or '(no extension)'}", "name it .jsonl, .csv or .tsv")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist", "create it, or write elsewhere")
    return kind


def predict_main(args: list[str]) -> int:
    try:
        opts = parser().parse_args(args)
        if opts.batch_size < 1:
            raise UserError(f"--batch-size {opts.batch_size} must be positive", "use e.g. --batch-size 32")
        run_dir = Path(opts.run_dir)
        saved_folder(run_dir)  # a run that cannot predict is refused before its input is read
        need_pair = trained_on_pairs(run_dir)
        kind = out_kind(Path(opts.out)) if opts.out else "jsonl"
        if opts.input is not None:
            if opts.text_pair is not None:
                raise UserError("--text-pair goes with --text", "with --input, put the pairs in a column of the file")
            texts, pairs = read_rows(Path(opts.input), opts.text_column, opts.text_pair_column, need_pair)
        else:
            if need_pair and opts.text_pair is None:
                raise UserError("the run was trained on text pairs: --text needs --text-pair", 'add --text-pair "..."')
            texts, pairs = [opts.text], None if opts.text_pair is None else [opts.text_pair]
        from ftlab.classifier import load
        from ftlab.cli import _quiet_libraries

        _quiet_libraries()
        rows = load(run_dir, threads=opts.threads).predict(texts, pairs, batch_size=opts.batch_size,
                                                              progress=True)
        text = render(rows, kind)
        if opts.out:
            write_bytes(Path(opts.out), text.encode("utf-8"), "the predictions")
        else:
            sys.stdout.write(text)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
