"""The training loss of a task, with the levers for imbalanced data (`loss.*`, set in conf/base.yaml).

- single-label (cross-entropy): `loss.class_weights` (`balanced`: n / (n_classes * count_c) from the
  training split, as sklearn's "balanced"; or one weight per label, in label order) and
  `loss.label_smoothing` in [0, 1);
- multi-label (BCE with logits): `loss.pos_weight` (`balanced`: n_neg / n_pos per label from the
  training split; or one weight per label). Class weights and label smoothing are cross-entropy's
  and are refused here rather than mapped onto BCE: pos_weight is the lever that fits;
- regression (MSE): none of them.

Validation and test losses are the same weighted loss (`val/loss` is what training minimises).
`check_loss` is the one check of the settings: the config checks call it when the dataset knows its
labels without reading the data (nothing runs on a wrong setting), the run calls it again with the
task the data gave, before training.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ftlab.data.task import TaskSpec, TaskType
from ftlab.errors import UserError

log = logging.getLogger(__name__)
BALANCED = "balanced"
DEFAULTS = {"class_weights": None, "label_smoothing": 0.0, "pos_weight": None}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_weights(key: str, value) -> None:
    if value is None or value == BALANCED:
        return
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise UserError(f"loss.{key}={value!r}: expected {BALANCED}, a list of weights (one per label) or null",
                        f"e.g. loss.{key}={BALANCED} or loss.{key}=[1.0,2.0,1.5]")
    bad = [v for v in value if not _is_number(v) or not v > 0]
    if bad:
        raise UserError(f"loss.{key} has {bad[0]!r} among its weights: every weight must be a positive number",
                        f"e.g. loss.{key}=[1.0,2.0,1.5], or loss.{key}={BALANCED}")


def _labels(task: TaskSpec) -> str:
    return f"{task.num_labels} labels ({', '.join(task.label_names)})"


def check_loss(loss: dict, task: TaskSpec | None, dataset: str) -> None:
    """`loss.*` alone (types, ranges), then against the task when it is known (None: not yet)."""
    settings = {**DEFAULTS, **dict(loss or {})}
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise UserError(f"loss.{unknown[0]} is not a setting of the loss", f"valid settings: {', '.join(DEFAULTS)}")
    smoothing = settings["label_smoothing"]
    if not _is_number(smoothing) or not 0.0 <= smoothing < 1.0:
        raise UserError(f"loss.label_smoothing={smoothing!r} is out of range: expected a number in [0, 1)",
                        "e.g. loss.label_smoothing=0.1 (0: none)")
    for key in ("class_weights", "pos_weight"):
        _check_weights(key, settings[key])
    if task is None:
        return
    chosen = [k for k, v in settings.items() if v != DEFAULTS[k]]
    if task.task_type is TaskType.REGRESSION and chosen:
        raise UserError(f"loss.{chosen[0]} does not apply to {dataset}: a regression task (MSE loss)",
                        "remove loss.class_weights, loss.label_smoothing and loss.pos_weight: they weight classes")
    if task.task_type is TaskType.SINGLE_LABEL and settings["pos_weight"] is not None:
        raise UserError(f"loss.pos_weight applies to multi-label tasks (BCE); {dataset} is single-label "
                        "(cross-entropy)", f"use loss.class_weights={BALANCED}, or a list of {task.num_labels} weights "
                        f"({', '.join(task.label_names)})")
    if task.task_type is TaskType.MULTI_LABEL:
        for key in ("class_weights", "label_smoothing"):
            if key in chosen:
                raise UserError(f"loss.{key} applies to single-label tasks (cross-entropy); {dataset} is "
                                "multi-label (BCE per label)",
                                f"remove loss.{key}; loss.pos_weight={BALANCED} (or one weight per label) "
                                "weights each label's positives")
    key = "class_weights" if task.task_type is TaskType.SINGLE_LABEL else "pos_weight"
    weights = settings[key]
    if isinstance(weights, Sequence) and not isinstance(weights, str) and len(weights) != task.num_labels:
        raise UserError(f"loss.{key} has {len(weights)} weights but {dataset} has {_labels(task)}",
                        f"give {task.num_labels} weights in that order, or loss.{key}={BALANCED}")


def balanced_class_weights(counts: Sequence[int], label_names: Sequence[str] | None = None) -> list[float]:
    """sklearn's "balanced": n_samples / (n_classes * count_c); a class without training examples is refused."""
    empty = [str(label_names[i]) if label_names else str(i) for i, c in enumerate(counts) if c == 0]
    if empty:
        raise UserError(f"loss.class_weights={BALANCED}: no training example of {', '.join(empty)}",
                        "give the weights as a list, or train on more examples (data.max_examples.train)")
    n, k = sum(counts), len(counts)
    return [n / (k * c) for c in counts]


def balanced_pos_weight(positives: Sequence[int], n: int, label_names: Sequence[str] | None = None) -> list[float]:
    """n_neg / n_pos per label; a label never (or always) positive in training gets 1.0 (warned): its
    positive (or negative) term never enters the training loss, so no weight would change training."""
    odd = [str(label_names[i]) if label_names else str(i) for i, p in enumerate(positives) if not 0 < p < n]
    if odd:
        log.warning("loss.pos_weight=%s: %s never or always positive in training: weight 1.0", BALANCED, ", ".join(odd))
    return [(n - p) / p if 0 < p < n else 1.0 for p in positives]


class TaskLoss(nn.Module):
    """The task's loss with its weights as non-persistent buffers: they follow the module's device and
    stay out of checkpoints (the run computes them again from the config and the data)."""

    def __init__(self, task: TaskSpec, class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0,
                 pos_weight: Sequence[float] | None = None):
        super().__init__()
        self.task_type = task.task_type
        self.label_smoothing = float(label_smoothing)
        for name, values in (("class_weights", class_weights), ("pos_weight", pos_weight)):
            tensor = None if values is None else torch.tensor([float(v) for v in values], dtype=torch.float32)
            self.register_buffer(name, tensor, persistent=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.task_type is TaskType.REGRESSION:
            return F.mse_loss(logits.squeeze(-1).float(), labels.float())
        if self.task_type is TaskType.MULTI_LABEL:
            pos_weight = None if self.pos_weight is None else self.pos_weight.float()
            return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=pos_weight)
        weight = None if self.class_weights is None else self.class_weights.float()
        return F.cross_entropy(logits.float(), labels, weight=weight, label_smoothing=self.label_smoothing)

    def to_dict(self) -> dict:
        """The weights in use (results.json): `balanced` resolved to numbers."""
        listed = lambda t: None if t is None else [round(float(v), 6) for v in t]  # noqa: E731
        return {"class_weights": listed(self.class_weights), "label_smoothing": self.label_smoothing,
                "pos_weight": listed(self.pos_weight)}


def task_loss(loss: dict | None, task: TaskSpec, dataset: str,
              train_label_counts: Callable[[], tuple[list[int], int]]) -> TaskLoss:
    """The run's loss from `loss.*`, checked against the task the data gave; `train_label_counts`
    (the datamodule's: per-label counts of the training split and its size) is read only for `balanced`."""
    check_loss(loss, task, dataset)
    settings = {**DEFAULTS, **dict(loss or {})}
    class_weights, pos_weight = settings["class_weights"], settings["pos_weight"]
    if BALANCED in (class_weights, pos_weight):
        counts, n = train_label_counts()
        if class_weights == BALANCED:
            class_weights = balanced_class_weights(counts, task.label_names)
        else:
            pos_weight = balanced_pos_weight(counts, n, task.label_names)
    for name, weights in (("class weights", class_weights), ("pos_weight", pos_weight)):
        if weights is not None:
            log.info("loss %s: %s", name, ", ".join(f"{label}={w:.4g}" for label, w in zip(task.label_names, weights)))
    return TaskLoss(task, class_weights, settings["label_smoothing"], pos_weight)
