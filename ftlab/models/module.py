"""The LightningModule: a Hugging Face classifier behind a PEFT injector, with torchmetrics metrics.

Checkpoints hold only what the injector trains (plus buffers), so a LoRA checkpoint is megabytes,
not the frozen backbone; loading one on top of the freshly built backbone restores the run.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix

from ftlab import predictions
from ftlab.data.batching import INDEX
from ftlab.data.task import TaskSpec, TaskType
from ftlab.errors import UserError
from ftlab.models.loss import TaskLoss
from ftlab.models.metrics import build_metrics, metric_inputs, per_class_scores, per_label_f1
from ftlab.peft.base import Injector

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
VAL_CONFUSION_KEY = "ftlab_val_confusion_matrices"


class ClassifierModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        task: TaskSpec,
        injector: Injector,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        decoder: bool = False,
        left_padded: bool = False,
        compile: bool = False,
        loss: TaskLoss | None = None,
    ):
        super().__init__()
        self.model = model
        self.task = task
        # cross-entropy / BCE / MSE by task, with `loss.*`'s weights (ftlab/models/loss.py); unweighted if None
        self.loss_fn = loss if loss is not None else TaskLoss(task)
        self.injector = injector
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.val_metrics = build_metrics(task).clone(prefix="val/")
        self.test_metrics = build_metrics(task).clone(prefix="test/")
        # rows = true class, columns = predicted; kept for the report's confusion-matrix figures and
        # results.json's per-class precision / recall / F1 (of the test and of each validation)
        single = task.task_type is TaskType.SINGLE_LABEL
        self.test_confusion = MulticlassConfusionMatrix(task.num_labels) if single else None
        self.val_confusion = MulticlassConfusionMatrix(task.num_labels) if single else None
        self.test_confusion_matrix: list[list[int]] | None = None
        self.test_per_class: dict[str, dict] | None = None
        # one {"epoch", "step", "matrix"} per validation of fit (the best one goes to results.json)
        self.val_confusion_matrices: list[dict] = []
        self.test_label_f1 = per_label_f1(task) if task.task_type is TaskType.MULTI_LABEL else None
        self.test_per_label_f1: dict[str, float] | None = None
        # per-example outputs (ftlab/predictions.py): of the test, and of each validation of fit by (epoch, step)
        self._eval_parts: list[dict] = []
        self.test_predictions: dict | None = None
        self.val_predictions: list[dict] = []
        # decoders take no segment ids; left-padded, their positions must start at the first real token:
        # rotary positions (Llama, Gemma, Qwen2) are shift-invariant, learned ones (GPT-2) are not
        self.inputs = ("input_ids", "attention_mask") if decoder else MODEL_INPUTS
        self.positions_from_mask = decoder and left_padded
        self.strict_loading = False  # checkpoints carry only the trained weights
        # torch.compile (inductor; dynamic shapes, as padding varies per batch): kept out of the module
        # tree so that state dicts, checkpoints and the injector see the model's own parameter names
        object.__setattr__(self, "_call_model", torch.compile(model, dynamic=True) if compile else model)
        # from_pretrained returns eval mode and Lightning keeps the mode it finds: train with dropout on
        self.train()

    # ---- forward / loss ----------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: batch[k] for k in self.inputs if k in batch}
        if self.positions_from_mask:
            inputs["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        return self._call_model(**inputs).logits

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(logits, labels)

    def training_step(self, batch, batch_idx):
        logits = self(batch)
        loss = self.loss(logits, batch["labels"])
        if not torch.isfinite(loss):
            raise UserError(f"training diverged: the loss is {loss.item()} at step {self.global_step}",
                            "lower optimizer.lr or set trainer.gradient_clip_val; checkpoints/ keeps the best "
                            "checkpoint so far (and resume.ckpt, written before the loss went non-finite)")
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["labels"]))
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def _eval_step(self, batch, metrics, stage: str) -> None:
        logits = self(batch)
        labels = batch["labels"]
        self.log(f"{stage}/loss", self.loss(logits, labels), on_epoch=True, batch_size=len(labels), sync_dist=True)
        metrics.update(*metric_inputs(self.task, logits, labels))
        if INDEX in batch:
            self._eval_parts.append(predictions.outputs(self.task, logits, labels, batch[INDEX]))
        return logits

    def validation_step(self, batch, batch_idx):
        logits = self._eval_step(batch, self.val_metrics, "val")
        if self.val_confusion is not None:
            self.val_confusion.update(logits.argmax(-1), batch["labels"])

    def test_step(self, batch, batch_idx):
        logits = self._eval_step(batch, self.test_metrics, "test")
        if self.test_confusion is not None:
            self.test_confusion.update(logits.argmax(-1), batch["labels"])
        if self.test_label_f1 is not None:
            self.test_label_f1.update(*metric_inputs(self.task, logits, batch["labels"]))

    def on_validation_epoch_start(self):
        self._eval_parts = []

    def on_test_epoch_start(self):
        self._eval_parts = []

    def on_validation_epoch_end(self):
        self.log_dict(self.val_metrics.compute())
        self.val_metrics.reset()
        rows, self._eval_parts = predictions.collect(self, self._eval_parts), []
        if not self.trainer.sanity_checking:
            self.val_predictions.append({"epoch": self.current_epoch, "step": self.global_step, "rows": rows})
        if self.val_confusion is not None:
            matrix = self.val_confusion.compute().tolist()
            self.val_confusion.reset()
            if not self.trainer.sanity_checking:
                self.val_confusion_matrices.append(
                    {"epoch": self.current_epoch, "step": self.global_step, "matrix": matrix})

    def val_confusion_at(self, epoch: int, step: int) -> list[list[int]] | None:
        """The validation confusion matrix of the evaluation at (epoch, step): the best one's for results.json."""
        return next((r["matrix"] for r in self.val_confusion_matrices if (r["epoch"], r["step"]) == (epoch, step)), None)

    def val_predictions_at(self, epoch: int, step: int) -> dict | None:
        """The per-example outputs of the validation at (epoch, step), if this process ran it."""
        return next((r["rows"] for r in self.val_predictions if (r["epoch"], r["step"]) == (epoch, step)), None)

    def on_test_epoch_end(self):
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()
        self.test_predictions, self._eval_parts = predictions.collect(self, self._eval_parts), []
        if self.test_confusion is not None:
            self.test_confusion_matrix = self.test_confusion.compute().tolist()
            self.test_confusion.reset()
            self.test_per_class = per_class_scores(self.test_confusion_matrix, self.task.label_names)
        if self.test_label_f1 is not None:
            scores = self.test_label_f1.compute().tolist()
            self.test_per_label_f1 = dict(zip(self.task.label_names, scores))
            self.test_label_f1.reset()

    # ---- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        decay, no_decay = [], []
        for param in self.model.parameters():
            if param.requires_grad:  # biases and norm weights (1-D) take no weight decay
                (no_decay if param.ndim < 2 else decay).append(param)
        groups = [g for g in ({"params": decay}, {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
        if not groups:
            raise UserError("no parameter is trainable", "choose a peft method that trains something")
        optimizer = self._fit_for_clipping(make_optimizer(self.optimizer_factory, groups), groups)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer, num_training_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _fit_for_clipping(self, optimizer, groups):
        """A fused optimizer unscales fp16 gradients inside its step, so Lightning refuses to clip them
        under mixed precision. With bf16 there is no scaler and nothing to unscale: clipping is exact,
        the fused step stays. With fp16 (a GradScaler) the optimizer is rebuilt unfused."""
        trainer = self._trainer
        if not getattr(optimizer, "_step_supports_amp_scaling", False) or trainer is None or not trainer.gradient_clip_val:
            return optimizer
        if getattr(trainer.precision_plugin, "scaler", None) is None:
            optimizer._step_supports_amp_scaling = False
            return optimizer
        return self.optimizer_factory(groups, fused=False, foreach=True)

    # ---- checkpoints -------------------------------------------------------------------------
    def _saved_keys(self) -> set[str]:
        keys = {f"model.{n}" for n in self.injector.state_to_save(self.model)}
        return keys | {f"model.{n}" for n, _ in self.model.named_buffers()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        keep = self._saved_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint[VAL_CONFUSION_KEY] = [dict(r) for r in self.val_confusion_matrices]  # a resumed run keeps them

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = {k.removeprefix("model."): v for k, v in checkpoint.get("state_dict", {}).items()}
        self.injector.check_state(self.model, state)
        known = {(r["epoch"], r["step"]) for r in self.val_confusion_matrices}
        self.val_confusion_matrices += [r for r in checkpoint.get(VAL_CONFUSION_KEY, []) if (r["epoch"], r["step"]) not in known]
        self.val_confusion_matrices.sort(key=lambda r: (r["epoch"], r["step"]))


def make_optimizer(factory: Callable[..., torch.optim.Optimizer], groups) -> torch.optim.Optimizer:
    """The configured optimizer over `groups`; torch's own value checks (lr, betas, eps,
    weight_decay) as a user error. The config checks call it on a probe parameter before any run."""
    try:
        return factory(groups)
    except ValueError as exc:  # "Invalid learning rate: -0.001"
        raise UserError(f"optimizer: {exc}", "use a positive optimizer.lr (e.g. 5e-4), betas in [0, 1), "
                        "eps and weight_decay >= 0") from None
