"""Training memory: the estimate (`estimate`), the measured (`measure`), and `ftlab estimate` (`command`)."""

from ftlab.memory.estimate import estimate_model
from ftlab.memory.formulas import GiB, format_table, layer_activation_bytes, params_only, static_bytes
from ftlab.memory.measure import MemoryRecorder, memory_report, static_measured

__all__ = ["GiB", "MemoryRecorder", "estimate_model", "format_table", "layer_activation_bytes", "memory_report",
           "params_only", "static_bytes", "static_measured"]
