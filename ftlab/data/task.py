"""What a dataset decides for the rest of the run: task type, label names, metrics, monitored metric.

The model, the injector and the metrics never ask the user for `num_labels`; they read a `TaskSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ftlab.errors import UserError


class TaskType(str, Enum):
    SINGLE_LABEL = "single_label"
    REGRESSION = "regression"
    MULTI_LABEL = "multi_label"


# extra metrics a dataset may ask for on top of its task type's defaults
EXTRA_METRICS = ("mcc", "f1", "pearson", "spearman")


@dataclass(frozen=True)
class TaskSpec:
    task_type: TaskType
    label_names: tuple[str, ...]
    extra_metrics: tuple[str, ...] = field(default_factory=tuple)
    # metric that picks the best checkpoint when the user does not choose one
    monitor: str = "val/macro_f1"
    monitor_mode: str = "max"
    # multi-label: a label is predicted when its sigmoid probability is >= threshold
    threshold: float = 0.5

    def __post_init__(self):
        unknown = set(self.extra_metrics) - set(EXTRA_METRICS)
        if unknown:
            raise ValueError(f"unknown extra metrics {sorted(unknown)}; known: {EXTRA_METRICS}")
        if not 0.0 < self.threshold < 1.0:
            raise UserError(f"dataset.threshold={self.threshold} is out of range",
                            "use a probability strictly between 0 and 1, e.g. dataset.threshold=0.5")

    @property
    def num_labels(self) -> int:
        return 1 if self.task_type is TaskType.REGRESSION else len(self.label_names)

    @property
    def problem_type(self) -> str:
        """The `problem_type` transformers uses for this task."""
        return {
            TaskType.SINGLE_LABEL: "single_label_classification",
            TaskType.REGRESSION: "regression",
            TaskType.MULTI_LABEL: "multi_label_classification",
        }[self.task_type]

    def to_dict(self) -> dict:
        return {
            "task_type": self.task_type.value,
            "label_names": list(self.label_names),
            "num_labels": self.num_labels,
            "extra_metrics": list(self.extra_metrics),
            "monitor": self.monitor,
            "monitor_mode": self.monitor_mode,
            **({"threshold": self.threshold} if self.task_type is TaskType.MULTI_LABEL else {}),
        }


def classification(label_names, extra_metrics=(), monitor="val/macro_f1") -> TaskSpec:
    return TaskSpec(TaskType.SINGLE_LABEL, tuple(label_names), tuple(extra_metrics), monitor, "max")


def regression(extra_metrics=("pearson", "spearman"), monitor="val/pearson") -> TaskSpec:
    return TaskSpec(TaskType.REGRESSION, ("score",), tuple(extra_metrics), monitor, "max")


def multi_label(label_names, threshold: float = 0.5, monitor="val/macro_f1") -> TaskSpec:
    """Several 0/1 labels per example: `label` is a list of num_labels floats."""
    return TaskSpec(TaskType.MULTI_LABEL, tuple(label_names), (), monitor, "max", threshold)
