"""`ftlab predict <run dir> (--input FILE | --text "..." [--text-pair "..."]) [--out FILE]`: a
trained run's model on new texts.

The run's saved model (`model/`, or `export/` where `model/` is missing or its base was randomly
initialised and not saved) is loaded by `ftlab.saved_model.load_classifier`; the texts are tokenized
as the run's datamodule did (pairs as pairs, truncated at its `data.max_length`), batched by length
with dynamic padding. FILE: .csv, .tsv or .jsonl (one object per line) with a text column (`text`,
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
from ftlab.errors import UserError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


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


# ---- the run ---------------------------------------------------------------------------------
def saved_folder(run_dir: Path) -> Path:
    """The folder to load: a completed run's model/ (export/ where model/ cannot be loaded on its own)."""
    from ftlab.results import COMPLETED, MISSING, load
    from ftlab.saved_model import RECORD_FILE

    if not run_dir.is_dir() or not ((run_dir / "results.json").exists() or (run_dir / ".hydra").is_dir()):
        raise UserError(f"{run_dir} is not a run folder (no results.json, no .hydra/)",
                        "pass the folder of a run: the one its results.json is in")
    record = load(run_dir)
    if record.status == MISSING:
        raise UserError(f"{run_dir} has no results.json: still running, or killed",
                        "wait for it to finish, or resume it: ftlab resume=<run dir>")
    if record.status != COMPLETED:
        raise UserError(f"{run_dir} did not complete ({record.status}: {record.reason})",
                        "predict with a completed run; train it again, or resume it: ftlab resume=<run dir>")
    model, export = run_dir / "model", run_dir / "export"
    if model.is_dir():
        try:
            base = json.loads((model / RECORD_FILE).read_text()).get("base") or {}
        except (OSError, ValueError):
            base = {}
        if "random" in base and export.is_dir():  # an adapter on a base that was never saved
            return export
        return model
    if export.is_dir():
        return export
    raise UserError(f"{run_dir} has no model/ (run with save.model=false?)",
                    "train it again with save.model=true (the default)")


def max_length_of(run_dir: Path, folder: Path) -> int:
    """The run's data.max_length: as its saved model records it, else its .hydra/config.yaml."""
    from ftlab.saved_model import RECORD_FILE

    try:
        return int(json.loads((folder / RECORD_FILE).read_text())["max_length"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from omegaconf import OmegaConf

    try:
        return int(OmegaConf.load(run_dir / ".hydra" / "config.yaml").data.max_length)
    except Exception:
        raise UserError(f"{run_dir}: neither {folder / RECORD_FILE} nor .hydra/config.yaml says data.max_length",
                        "predict with a run saved by this ftlab") from None


def trained_on_pairs(run_dir: Path) -> bool | None:
    """Whether the run's examples were text pairs (its predictions say it), None when unknown."""
    from ftlab import predictions

    try:
        with predictions.path(run_dir, "test").open(encoding="utf-8") as f:
            return "text_pair" in json.loads(f.readline())
    except (OSError, ValueError):
        return None


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


# ---- the model -------------------------------------------------------------------------------
def predict(model, tokenizer, texts: list[str], pairs: list[str] | None, max_length: int,
            batch_size: int) -> list:
    """Each input's logits (a list of floats), in input order; tokenized and padded as training did."""
    import torch

    from ftlab.data.batching import DynamicPaddingCollator
    from ftlab.models.backbone import is_decoder

    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    keys = [k for k in MODEL_INPUTS if k in enc]
    examples = [{**{k: enc[k][i] for k in keys}, "labels": 0} for i in range(len(texts))]
    collate = DynamicPaddingCollator(tokenizer.pad_token_id, tokenizer.padding_side)
    decoder = is_decoder(model.config)
    inputs = ("input_ids", "attention_mask") if decoder else MODEL_INPUTS
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    out: list = [None] * len(examples)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = collate([examples[i] for i in chunk])
            feed = {k: batch[k] for k in inputs if k in batch}
            if decoder and tokenizer.padding_side == "left":
                feed["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            logits = model(**feed).logits.float()
            for i, row in zip(chunk, logits.tolist()):
                out[i] = row
    return out


def task_of_folder(folder: Path, model):
    from ftlab.data.task import classification
    from ftlab.saved_model import read_record, task_of

    try:
        return task_of(read_record(folder))
    except UserError:  # a plain transformers folder: its config's labels
        return classification([model.config.id2label[i] for i in range(model.config.num_labels)])


def output_rows(task, texts, pairs, logits) -> list[dict]:
    import torch

    from ftlab.data.task import TaskType

    names = list(task.label_names)
    rows = []
    for i, row in enumerate(logits):
        out = {"text": texts[i], **({"text_pair": pairs[i]} if pairs is not None else {})}
        scores = torch.tensor(row)
        if task.task_type is TaskType.REGRESSION:
            out["value"] = float(scores[0])
        elif task.task_type is TaskType.MULTI_LABEL:
            probs = torch.sigmoid(scores).tolist()
            ids = [j for j, p in enumerate(probs) if p > task.threshold]
            out.update(label=[names[j] for j in ids], label_id=ids,
                       probs={n: round(p, 6) for n, p in zip(names, probs)})
        else:
            probs = torch.softmax(scores, -1).tolist()
            j = int(scores.argmax())
            out.update(label=names[j], label_id=j, probs={n: round(p, 6) for n, p in zip(names, probs)})
        rows.append(out)
    return rows


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
        folder = saved_folder(run_dir)
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
        max_length = max_length_of(run_dir, folder)
        from ftlab.cli import _quiet_libraries

        _quiet_libraries()
        import torch

        if opts.threads:
            torch.set_num_threads(opts.threads)
        from ftlab.saved_model import load_classifier

        model, tokenizer = load_classifier(folder)
        rows = output_rows(task_of_folder(folder, model), texts, pairs,
                           predict(model, tokenizer, texts, pairs, max_length, opts.batch_size))
        text = render(rows, kind)
        if opts.out:
            write_bytes(Path(opts.out), text.encode("utf-8"), "the predictions")
        else:
            sys.stdout.write(text)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
