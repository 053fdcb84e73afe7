"""Metric collections per task type, computed on device and reduced once per epoch by torchmetrics."""

from __future__ import annotations

import torch
from torchmetrics import MeanSquaredError, MetricCollection, PearsonCorrCoef, SpearmanCorrCoef
from torchmetrics.classification import (
    BinaryF1Score,
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassMatthewsCorrCoef,
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
    raise NotImplementedError(f"metrics for {task.task_type.value} are not implemented yet")


def metric_inputs(task: TaskSpec, logits: torch.Tensor, labels: torch.Tensor):
    """What the metrics of `build_metrics` take: class ids, or the score for regression."""
    if task.task_type is TaskType.REGRESSION:
        return logits.squeeze(-1).float(), labels.float()
    preds = logits.argmax(-1)
    return preds, labels
