"""Helpers shared by the benchmark's parent and its child processes. Standard library only at import
(torch lazily, in the children's functions): the parent stays small (no torch), so it never
inflates a child's peak RSS or competes for memory."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from ftlab.rss import peak_rss_bytes  # noqa: F401 (light: no torch import)

NUM_LABELS = 3  # restaurant_sup: negative, neutral, positive
FP32, BF16 = "32-true", "bf16-mixed"  # the precisions a contender runs in (spec["precision"], Lightning's names)
PRECISIONS = (FP32, BF16)


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
        self.precision: PrecisionWatch | None = None  # from start(): the autocast state the forward runs in

    def start(self) -> None:
        self.train_start = time.perf_counter()
        self.precision = PrecisionWatch()

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
            "precision_seen": self.precision.to_dict() if self.precision else None,
        }


def batch_shape(batch) -> list[int]:
    mask = batch["attention_mask"]
    return [int(mask.shape[0]), int(mask.sum()), int(mask.numel())]


def param_counts(model) -> dict:
    """total, embedding (no matmul FLOPs per token: a lookup) and matmul parameters: the weights of
    the Linear layers outside the embeddings (every encoder projection, the pooler, the head), the
    only parameters whose per-token cost is a multiply-add each (FLOPs = 6 x matmul x tokens in
    training). Biases and norm weights are elementwise and not counted. Works on a "meta" model."""
    import torch

    base = getattr(model, model.base_model_prefix, model)
    embeddings = base.embeddings if hasattr(base, "embeddings") else model.get_input_embeddings()
    inside = {id(p) for p in embeddings.parameters()}
    weights = [m.weight for m in model.modules()
               if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"]  # Conv1D: GPT-2's Linear
    return {"total": sum(p.numel() for p in model.parameters()),
            "embedding": sum(p.numel() for p in embeddings.parameters()),
            "matmul": sum(w.numel() for w in {id(w): w for w in weights if id(w) not in inside}.values())}


def _dtype(dtype) -> str | None:
    return None if dtype is None else str(dtype).removeprefix("torch.")


class PrecisionWatch:
    """What a contender's forward really computes in. From its creation (StepLog.start: the
    framework's train call), a process-wide forward hook waits for the first Linear layer that runs
    in training mode, then leaves (so the modules' fast call path is back after one layer); a hook on
    that layer records, once while training and once while evaluating, whether autocast is on (and
    its dtype) and the dtypes of the layer's input, weight and output. The same check for every
    contender: the HF Trainer's `bf16=True` (accelerate's autocast around the model's forward),
    Lightning's bf16-mixed (autocast around the step), the plain loop's own torch.autocast."""

    def __init__(self):
        import torch

        self.seen: dict[str, dict] = {}
        self._layer = None
        self._global = torch.nn.modules.module.register_module_forward_hook(self._find)

    def _find(self, module, inputs, output) -> None:
        import torch

        if self._layer is None and isinstance(module, torch.nn.Linear) and module.training:
            self._global.remove()
            self._layer = module.register_forward_hook(self._record)
            self._record(module, inputs, output)

    def _record(self, module, inputs, output) -> None:
        import torch

        phase = "train" if module.training else "eval"
        if phase in self.seen:
            return
        device = module.weight.device.type
        on = torch.is_autocast_enabled(device)
        first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        self.seen[phase] = {"autocast": _dtype(torch.get_autocast_dtype(device)) if on else None,
                            "input": _dtype(getattr(first, "dtype", None)), "weight": _dtype(module.weight.dtype),
                            "output": _dtype(getattr(output, "dtype", None))}
        if len(self.seen) == 2:
            self._layer.remove()

    def to_dict(self) -> dict:
        return dict(self.seen)
