"""Metric collections per task type, computed on device and reduced once per epoch by torchmetrics."""

from __future__ import annotations

import torch
from torchmetrics import MeanSquaredError, MetricCollection, PearsonCorrCoef, SpearmanCorrCoef
from torchmetrics.classification import (
    BinaryF1Score,
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassMatthewsCorrCoef,
    MultilabelExactMatch,
    MultilabelF1Score,
)

from ftlab.data.task import TaskSpec, TaskType


def build_metrics(task: TaskSpec) -> MetricCollection:
    n = task.num_labels
    if task.task_type is TaskType.REGRESSION:
        metrics = {"mse": MeanSquaredError()}
        if "pearson" in task.extra_metrics:
            metrics["pearson"] = PearsonCorrCoef()
        if "spearman" in task.extra_metrics:
            metrics["spearman"] = SpearmanCorrCoef()
        return MetricCollection(metrics)
    if task.task_type is TaskType.SINGLE_LABEL:
        metrics = {
            "accuracy": MulticlassAccuracy(n, average="micro"),
            "macro_f1": MulticlassF1Score(n, average="macro"),
            "micro_f1": MulticlassF1Score(n, average="micro"),
        }
        if "mcc" in task.extra_metrics:
            metrics["mcc"] = MulticlassMatthewsCorrCoef(n)
        if "f1" in task.extra_metrics:  # binary F1 of the positive class (GLUE MRPC)
            metrics["f1"] = BinaryF1Score()
        return MetricCollection(metrics)
    # multi-label: `accuracy` is exact match (every label right), what sklearn's accuracy_score and
    # the studies call accuracy; F1s count each (example, label) decision at `task.threshold`
    return MetricCollection({
        "accuracy": MultilabelExactMatch(n, threshold=task.threshold),
        "macro_f1": MultilabelF1Score(n, threshold=task.threshold, average="macro"),
        "micro_f1": MultilabelF1Score(n, threshold=task.threshold, average="micro"),
    })


def per_label_f1(task: TaskSpec) -> MultilabelF1Score:
    """F1 of each label separately (multi-label), for results.json."""
    return MultilabelF1Score(task.num_labels, threshold=task.threshold, average="none")


def metric_inputs(task: TaskSpec, logits: torch.Tensor, labels: torch.Tensor):
    """What the metrics of `build_metrics` take: class ids, the score for regression, or each
    label's probability and the 0/1 targets for multi-label."""
    if task.task_type is TaskType.REGRESSION:
        return logits.squeeze(-1).float(), labels.float()
    if task.task_type is TaskType.MULTI_LABEL:
        return torch.sigmoid(logits.float()), labels.long()
    preds = logits.argmax(-1)
    return preds, labels


def per_class_scores(confusion: list[list[int]], label_names) -> dict[str, dict]:
    """Precision, recall, F1 and support of each class, from a confusion matrix (rows: true class,
    columns: predicted), as results.json reports them for single-label runs. Counted from the
    matrix the run already keeps, so they agree with it exactly; a ratio with nothing to divide by
    is 0.0, as torchmetrics' `zero_division=0`."""
    def ratio(num: int, den: int) -> float:
        return num / den if den else 0.0

    scores = {}
    for c, name in enumerate(label_names):
        tp = confusion[c][c]
        support = sum(confusion[c])
        predicted = sum(row[c] for row in confusion)
        precision, recall = ratio(tp, predicted), ratio(tp, support)
        scores[name] = {"precision": precision, "recall": recall,
                        "f1": ratio(2 * tp, support + predicted), "support": support}
    return scores
