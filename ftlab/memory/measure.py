"""Measured training memory, recorded by a callback, and the `memory` entry of results.json.

When: weights, gradients and optimizer state are summed at the end of the first optimizer step.
That is the first moment all three exist at full size (AdamW creates its moments lazily in its
first `step`, and Lightning sets gradients to None only right before the next backward, so they
are still there), and none of them grows afterwards; a run that never steps is measured at fit
end instead. Activations are the bytes autograd saves for the backward of the first training
batch (a `saved_tensors_hooks` pass over that forward, each storage counted once, parameters
excluded: under autocast that includes the 16-bit weight copies); its batch shape is recorded
because batches are padded per batch, not to max_length, and `compare` sets the estimate at it.
On a GPU, `torch.cuda.max_memory_allocated()` is the peak since fit start; on every device the
process's peak RSS is recorded too.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from omegaconf import DictConfig

from ftlab.memory.estimate import estimate_model
from ftlab.models.optimizers import TORCH_ADAMW, optimizer_that_runs
from ftlab.models.structure import weights_4bit
from ftlab.rss import peak_rss_bytes

log = logging.getLogger(__name__)


def tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def static_measured(model: torch.nn.Module, optimizers) -> dict[str, int]:
    """Exact bytes now held by parameters, their .grad tensors and the optimizers' state."""
    params = {id(p): p for p in model.parameters()}.values()
    state = [v for opt in optimizers for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    return {"weights": sum(tensor_bytes(p) for p in params),
            "gradients": sum(tensor_bytes(p.grad) for p in params if p.grad is not None),
            "optimizer_states": sum(tensor_bytes(t) for t in state)}


class MemoryRecorder(L.Callback):
    def __init__(self):
        self.measured: dict = {}
        self._saved: dict[tuple, int] = {}
        self._hooks = None
        self._param_ptrs: set[tuple] = set()

    def on_fit_start(self, trainer, pl_module):
        self.measured["device"] = str(pl_module.device)
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)
            self.measured["cuda_allocated_at_fit_start_bytes"] = torch.cuda.memory_allocated(pl_module.device)

    # activations of the first batch
    def _pack(self, t: torch.Tensor):
        try:
            storage = t.untyped_storage()
            key = (str(t.device), storage.data_ptr())
            if key not in self._param_ptrs:
                self._saved[key] = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._hooks is not None or "activations_first_batch_bytes" in self.measured:
            return
        self._param_ptrs = {(str(p.device), p.untyped_storage().data_ptr()) for p in pl_module.parameters()}
        ids = batch.get("input_ids") if isinstance(batch, dict) else None
        if ids is not None:
            self.measured["first_batch_shape"] = list(ids.shape)
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()

    def _stop_hooks(self) -> None:
        if self._hooks is not None:
            self._hooks.__exit__(None, None, None)
            self._hooks = None

    def on_before_backward(self, trainer, pl_module, loss):
        if self._hooks is not None:
            self._stop_hooks()
            self.measured["activations_first_batch_bytes"] = sum(self._saved.values())
            self._saved.clear()

    def on_exception(self, trainer, pl_module, exception):
        self._stop_hooks()

    # weights, gradients, optimizer state after the first optimizer step
    def _measure_static(self, trainer, pl_module, when: str) -> None:
        self.measured.update(static_measured(pl_module, trainer.optimizers), measured_at=when)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._stop_hooks()  # a step without backward (training_step returned None): not measured
        if "measured_at" not in self.measured and trainer.global_step >= 1:
            self._measure_static(trainer, pl_module, "first optimizer step")

    def on_fit_end(self, trainer, pl_module):
        self._stop_hooks()
        if "measured_at" not in self.measured:
            self._measure_static(trainer, pl_module, "fit end")
        if pl_module.device.type == "cuda":
            self.measured["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated(pl_module.device)
            self.measured["cuda_max_reserved_bytes"] = torch.cuda.max_memory_reserved(pl_module.device)
        self.measured["peak_rss_bytes"] = peak_rss_bytes()


def config_device(cfg: DictConfig) -> str:
    """"cuda" or "cpu": what trainer.accelerator picks on this machine."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if accelerator in ("gpu", "cuda") else "cpu"


def estimate_for_config(cfg: DictConfig, model, injector, batch_size: int | None = None, max_length: int | None = None,
                        device: str | None = None) -> dict:
    """The estimate for this run's model, precision, optimizer, device and batch shape (cfg.data unless given)."""
    opt = cfg.optimizer
    device = device or config_device(cfg)
    bits = int(opt.get("bits", 32))
    target, _ = optimizer_that_runs(opt.get("_target_", TORCH_ADAMW), bits, bool(opt.get("paged", False)), device)
    return estimate_model(
        model, batch_size=int(batch_size or cfg.data.batch_size), max_length=int(max_length or cfg.data.max_length),
        precision=cfg.trainer.get("precision", "32-true"), optimizer=target,
        momentum=float(opt.get("momentum", 0.0) or 0.0), quant_4bit=weights_4bit(injector.load_kwargs()),
        device=device, optimizer_bits=bits)


def memory_report(cfg: DictConfig, model, injector, recorder: MemoryRecorder) -> dict:
    """results.json's "memory": the estimate (at cfg's batch x max_length) next to the measured, and a
    per-component comparison (activations estimated at the first batch's real shape)."""
    try:
        measured = dict(recorder.measured)
        device = "cuda" if measured.get("device", "").startswith("cuda") else "cpu" if "device" in measured else None
        estimate = estimate_for_config(cfg, model, injector, device=device)
        compare = {k: {"estimate": estimate["bytes"][k], "measured": measured[k]}
                   for k in ("weights", "gradients", "optimizer_states") if k in measured}
        shape = measured.get("first_batch_shape")
        if shape and "activations_first_batch_bytes" in measured:
            at_shape = estimate_for_config(cfg, model, injector, batch_size=shape[0], max_length=shape[-1], device=device)
            est_acts = at_shape["bytes"]["activations"] + at_shape["bytes"].get("autocast_weight_copies", 0)
            compare["activations"] = {"estimate": est_acts, "shape": shape, "measured": measured["activations_first_batch_bytes"]}
        return {"estimate": estimate, "measured": measured, "compare": compare}
    except Exception as exc:  # a report must not fail a finished run
        log.warning("memory report failed: %s: %s", type(exc).__name__, exc)
        return {"error": f"{type(exc).__name__}: {exc}", "measured": dict(recorder.measured)}
