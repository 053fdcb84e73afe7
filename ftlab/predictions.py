"""A run's predictions per example: `<run>/predictions/test.jsonl` (the tested, best checkpoint) and
`<run>/predictions/validation.jsonl` (the validation at the best checkpoint), written by rank 0.

One JSON object per line, in dataset order (by `index`, the example's row in its split as the source
loads it, before `data.max_examples`), with label ids; their names are results.json's `task.label_names`:

    single label:  {"index": 3, "text": "...", "text_pair": "...", "label": 2, "pred": 1, "probs": [..]}
    multi-label:   {"index": 3, "text": "...", "label": [0, 4], "pred": [4], "probs": [..]}  (ids of the
                   labels on; a label is predicted when its probability > task.threshold, as the metrics)
    regression:    {"index": 3, "text": "...", "label": 0.5, "pred": 0.43}

`text_pair` only for pair datasets. Only the examples evaluated are there (`trainer.limit_test_batches`
tests fewer), so the file reproduces results.json's test metrics and confusion matrix exactly.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ftlab.atomic import write_bytes
from ftlab.data.task import TaskSpec, TaskType
from ftlab.errors import UserError

log = logging.getLogger(__name__)

FOLDER = "predictions"
KEYS = ("index", "label", "score", "pred")
PROB_DIGITS = 6


def path(run_dir: Path | str, split: str) -> Path:
    return Path(run_dir) / FOLDER / f"{split}.jsonl"


# ---- collected in the module's evaluation steps --------------------------------------------------
def outputs(task: TaskSpec, logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> dict:
    """One batch's rows (CPU tensors): index, gold, score (probabilities, or the value), prediction."""
    logits = logits.detach().float()
    if task.task_type is TaskType.REGRESSION:
        score = logits.squeeze(-1)
        pred = score
    elif task.task_type is TaskType.MULTI_LABEL:
        score = torch.sigmoid(logits)
        pred = (score > task.threshold).long()
    else:
        score = torch.softmax(logits, -1)
        pred = logits.argmax(-1)  # from the logits, as the metrics and the confusion matrix count it
    return {"index": index.detach().cpu(), "label": labels.detach().cpu(), "score": score.cpu(), "pred": pred.cpu()}


def empty_outputs(task: TaskSpec) -> dict:
    """No rows (a rank the last evaluation batch left out): the shapes `outputs` gives."""
    n = task.num_labels
    if task.task_type is TaskType.REGRESSION:
        return {"index": torch.zeros(0, dtype=torch.long), "label": torch.zeros(0), "score": torch.zeros(0),
                "pred": torch.zeros(0)}
    multi = task.task_type is TaskType.MULTI_LABEL
    return {"index": torch.zeros(0, dtype=torch.long),
            "label": torch.zeros(0, n) if multi else torch.zeros(0, dtype=torch.long),
            "score": torch.zeros(0, n),
            "pred": torch.zeros(0, n, dtype=torch.long) if multi else torch.zeros(0, dtype=torch.long)}


def collect(module, parts: list[dict]) -> dict:
    """The batches' rows joined, and under DDP every rank's (each holds a share of the split): all
    ranks call it; equal-length padding for all_gather, trimmed to each rank's count."""
    rows = ({k: torch.cat([p[k] for p in parts]) for k in KEYS} if parts else empty_outputs(module.task))
    trainer = getattr(module, "_trainer", None)
    if trainer is None or trainer.world_size <= 1:
        return rows
    device = module.device
    counts = module.all_gather(torch.tensor(len(rows["index"]), device=device)).reshape(-1).tolist()
    longest = max(counts)
    gathered = {}
    for key, value in rows.items():
        padded = torch.zeros((longest, *value.shape[1:]), dtype=value.dtype, device=device)
        padded[: len(value)] = value.to(device)
        every = module.all_gather(padded).cpu()  # (world, longest, ...)
        gathered[key] = torch.cat([every[r, :n] for r, n in enumerate(counts)])
    return gathered


# ---- the file ----------------------------------------------------------------------------------
def _ids(row: torch.Tensor) -> list[int]:
    return [i for i, on in enumerate(row.tolist()) if on > 0.5]


def lines(task: TaskSpec, rows: dict, texts: dict[str, list] | None = None) -> list[dict]:
    """The file's objects, in dataset order; `texts`: the split's raw columns (`text`, `text_pair`), by index."""
    order = torch.argsort(rows["index"], stable=True)
    out = []
    for i in order.tolist():
        index = int(rows["index"][i])
        line: dict = {"index": index}
        for column in ("text", "text_pair"):
            if texts and texts.get(column) is not None:
                line[column] = texts[column][index]
        if task.task_type is TaskType.REGRESSION:
            line["label"], line["pred"] = float(rows["label"][i]), float(rows["pred"][i])
        elif task.task_type is TaskType.MULTI_LABEL:
            line["label"], line["pred"] = _ids(rows["label"][i]), _ids(rows["pred"][i])
            line["probs"] = [round(p, PROB_DIGITS) for p in rows["score"][i].tolist()]
        else:
            line["label"], line["pred"] = int(rows["label"][i]), int(rows["pred"][i])
            line["probs"] = [round(p, PROB_DIGITS) for p in rows["score"][i].tolist()]
        out.append(line)
    return out


def write(run_dir: Path | str, split: str, task: TaskSpec, rows: dict, texts: dict[str, list] | None = None) -> Path:
    """`<run>/predictions/<split>.jsonl`, whole or not at all (ftlab/atomic.py)."""
    target = path(run_dir, split)
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines(task, rows, texts))
    write_bytes(target, text.encode("utf-8"), f"the {split} predictions")
    return target


def load(run_dir: Path | str, split: str = "test") -> list[dict]:
    """The objects of `<run>/predictions/<split>.jsonl`, in dataset order."""
    file = path(run_dir, split)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no predictions for {split} in {run_dir} ({file} is missing)",
                        "runs write them since ftlab wrote predictions/; train the run again") from None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_run(run_dir: Path | str, module, datamodule, best: dict | None) -> list[Path]:
    """Rank 0, once the run is tested: the test predictions and those of the best validation (when
    this process ran it: a resumed run does not keep those of the validations before it stopped)."""
    task = module.task
    wanted = {"test": module.test_predictions}
    if best is not None:
        wanted["validation"] = module.val_predictions_at(best["epoch"], best["step"])
    wanted = {split: rows for split, rows in wanted.items() if rows is not None}
    if not wanted:
        return []
    raw = split_texts(datamodule, list(wanted))
    return [write(run_dir, split, task, rows, raw.get(split)) for split, rows in wanted.items()]


def split_texts(datamodule, splits: list[str]) -> dict[str, dict]:
    """The raw text columns of each split (the tokenization cache keeps token ids only): the source
    parsed again; none (a line without text) when it cannot be."""
    try:
        loaded = datamodule.source.load()
    except Exception as err:  # the files moved since the run tokenized them: ids and labels still
        log.warning("predictions without the texts: the dataset cannot be read again (%s)", err)
        return {}
    out = {}
    for split in splits:
        data = loaded.splits[split]
        out[split] = {c: data[c] for c in ("text", "text_pair") if c in data.column_names}
    return out
