"""Helpers shared by the benchmark's parent and its child processes. Standard library only: the
parent stays small (no torch), so it never inflates a child's peak RSS or competes for memory."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from ftlab.rss import peak_rss_bytes  # noqa: F401 (light: no torch import)

NUM_LABELS = 3  # restaurant_sup: negative, neutral, positive


def _numeric(values) -> bool:
    return bool(values) and all(isinstance(v, (int, float, type(None))) or (isinstance(v, list) and _numeric(v))
                                for v in values)


def dumps(data) -> str:
    """Indented JSON with every list of numbers (step times, batch shapes) on one line."""
    inline: dict[str, str] = {}

    def walk(value):
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            if _numeric(value):
                key = f"@@inline{len(inline)}@@"
                inline[key] = json.dumps(value, separators=(",", ":"))
                return key
            return [walk(v) for v in value]
        return value

    text = json.dumps(walk(data), indent=1)
    for key, value in inline.items():
        text = text.replace(f'"{key}"', value, 1)
    return text + "\n"


def write_json(path: str | Path, data: dict) -> None:
    """Atomic write: a reader sees the previous file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(dumps(data))
    os.replace(tmp, path)


def subsample(splits, max_examples: dict, seed: int = 0):
    """ftlab's `data.max_examples` subset (TextClassificationDataModule._subsample, with its default
    subsample_seed=0): the same examples, in the same order, for every contender."""
    import torch

    for split, n in (max_examples or {}).items():
        if n is not None and n < len(splits[split]):
            gen = torch.Generator().manual_seed(seed)
            keep = torch.randperm(len(splits[split]), generator=gen)[:n].sort().values.tolist()
            splits[split] = splits[split].select(keep)
    return splits


def classification_metrics(logits, labels, num_labels: int = NUM_LABELS) -> dict:
    """Accuracy and macro-F1 as ftlab's torchmetrics compute them (MulticlassAccuracy micro,
    MulticlassF1Score macro: a class absent from both predictions and labels is left out), in plain
    torch, so the HF and plain-loop processes need not import torchmetrics (memory, start-up)."""
    import torch

    preds, labels = torch.as_tensor(logits).argmax(-1), torch.as_tensor(labels)
    f1s = []
    for c in range(num_labels):
        tp = int(((preds == c) & (labels == c)).sum())
        fp = int(((preds == c) & (labels != c)).sum())
        fn = int(((preds != c) & (labels == c)).sum())
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float((preds == labels).float().mean()), "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0}


class StepLog:
    """What every contender records the same way: the end of each optimizer step (perf_counter),
    the batch it trained on (examples, real tokens, padded tokens), and the test-set evaluation."""

    def __init__(self):
        self.train_start: float | None = None  # perf_counter when the framework's train call begins
        self.first_step_wall: float | None = None  # time.time() at the end of step 1 (vs the parent's launch)
        self.step_ends: list[float] = []
        self.batches: list[list[int]] = []  # [examples, real tokens, padded tokens] per step
        self.eval_seconds: float | None = None
        self.eval_samples = 0

    def start(self) -> None:
        self.train_start = time.perf_counter()

    def step(self, batch=None) -> None:
        self.step_ends.append(time.perf_counter())
        if self.first_step_wall is None:
            self.first_step_wall = time.time()
        if batch is not None:
            self.batches.append(batch_shape(batch))

    def to_dict(self) -> dict:
        start = self.train_start
        return {
            "step_ends": [round(t - start, 6) for t in self.step_ends],  # seconds since train start
            "batches": self.batches,
            "first_step_wall": self.first_step_wall,
            "eval_seconds": self.eval_seconds,
            "eval_samples": self.eval_samples,
        }


def batch_shape(batch) -> list[int]:
    mask = batch["attention_mask"]
    return [int(mask.shape[0]), int(mask.sum()), int(mask.numel())]
