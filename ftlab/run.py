"""One run, in four named steps: check the config (ftlab/config), assemble the data, the model and
the trainer, fit (or fit on from a checkpoint: ftlab/resume.py) and test the best checkpoint, record
the weights and results.json in the run directory."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict

from ftlab.atomic import AtomicCheckpointIO, OutOfSpace, is_out_of_space, replaced_folder
from ftlab.callbacks import RESUME_FILE, ResumeState, RunInterrupted, RunRecorder
from ftlab.config import build, build_each, checked, resolve_monitor
from ftlab.config.checks import uses_fsdp
from ftlab import predictions
from ftlab.cpu import tune_for_cpu_training
from ftlab.errors import UserError
from ftlab.distributed import wrap_each_layer
from ftlab.memory import MemoryRecorder, memory_report
from ftlab.models.backbone import is_decoder
from ftlab.model_card import write_model_card
from ftlab.models.loss import task_loss
from ftlab.models.metrics import per_class_scores
from ftlab.precision import record as precision_record
from ftlab.models.module import ClassifierModule
from ftlab.results import RESULTS_FILE, completed, git_commit, interrupted, package_versions
from ftlab.resume import Resume, continue_logs
from ftlab.rss import reset_peak_rss
from ftlab.saved_model import describe

log = logging.getLogger(__name__)


def apply_eval_every_n_steps(cfg: DictConfig) -> None:
    """`eval_every_n_steps` in optimizer steps -> Lightning's validation interval in batches, across epochs."""
    n = cfg.get("eval_every_n_steps")
    if n is None:
        return
    with open_dict(cfg):
        cfg.trainer.val_check_interval = n * int(cfg.trainer.get("accumulate_grad_batches") or 1)
        cfg.trainer.check_val_every_n_epoch = None


def save_model(cfg: DictConfig, run: "Assembled", output_dir: Path) -> tuple[dict, dict]:
    """`model/`: what the method trains (PEFT's format for peft-backed methods) plus the tokenizer;
    `export/`: merged into a plain transformers model, when asked and the method allows it. Each
    describes itself (labels, base model, method: ftlab/saved_model.py). Returns results.json's
    `saved` and each folder's record, for its model card once the run is tested."""
    save, injector, model, tokenizer = cfg.save, run.injector, run.module.model, run.tokenizer
    base, task = run.backbone.base_reference(), run.datamodule.task
    saved, records = {}, {}
    if save.model:
        with replaced_folder(output_dir / "model", "the trained weights (model/)") as folder:
            injector.save_pretrained(model, folder)
            tokenizer.save_pretrained(folder)
            records["model"] = describe(folder, cfg, base, task, tokenizer, injector.name)
        saved["model"] = "model"
    if save.export:
        if not injector.can_merge:
            log.warning("save.export skipped: peft=%s cannot be merged into the base weights", injector.name)
        else:
            with replaced_folder(output_dir / "export", "the merged model (export/)") as folder:
                injector.export(model, folder, tokenizer)
                records["export"] = describe(folder, cfg, base, task, tokenizer, injector.name)
            saved["export"] = "export"
    return saved, records


def write_model_cards(output_dir: Path, records: dict, results: dict) -> None:
    """README.md of each saved folder, now that its metrics are known (before results.json says the run completed)."""
    export = output_dir / "export" if "export" in records else None
    for name, record in records.items():
        write_model_card(output_dir / name, record, results, export)


def best_epoch(history: list[dict], monitor: str, mode: str) -> dict | None:
    rows = [r for r in history if r.get(monitor) is not None]
    if not rows:
        return None
    pick = max if mode == "max" else min
    return pick(rows, key=lambda r: r[monitor])  # first of ties, as ModelCheckpoint keeps it


@dataclass
class Assembled:
    """What one run is made of, built from its config in this order."""

    injector: object
    tokenizer: object
    datamodule: object
    model: object
    module: ClassifierModule
    trainer: L.Trainer
    params: object
    backbone: object = None  # where the weights came from: the saved model records it
    early_stopping: dict | None = None  # set after fit (testing the best checkpoint restores its state)


def assemble(cfg: DictConfig, resume: Resume | None) -> Assembled:
    """Data first (its errors come before any weights load), then the model with the method
    injected, then the trainer with the config's callbacks and loggers."""
    apply_eval_every_n_steps(cfg)
    reset_peak_rss()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    loggers = build_each(cfg, "logger")  # first: a logger that cannot be built (wandb missing) fails at start
    injector = build(cfg, "peft")
    backbone = build(cfg, "model")
    tokenizer = backbone.load_tokenizer()
    datamodule = build(cfg, "data", source=build(cfg, "dataset"), tokenizer=tokenizer, seed=cfg.seed)
    datamodule.setup()  # parse, validate and tokenize before the model is loaded
    task = datamodule.task
    resolve_monitor(cfg, task)
    loss = task_loss(OmegaConf.to_container(cfg.loss, resolve=True) if cfg.get("loss") else None, task,
                     datamodule.source.name or type(datamodule.source).__name__, datamodule.train_label_counts)

    built = backbone.build(task, tokenizer, **injector.load_kwargs())
    model = injector.inject(built.model, built.new_parameters)
    params = injector.trainable_report(model)
    log.info("trainable parameters: %s / %s (%.3f%%)", f"{params.trainable:,}", f"{params.total:,}", params.percent)
    module = ClassifierModule(
        model, task, injector,
        optimizer=build(cfg, "optimizer"),
        scheduler=build(cfg, "scheduler") if cfg.get("scheduler") else None,
        decoder=is_decoder(model.config),
        left_padded=tokenizer.padding_side == "left",
        compile=bool(cfg.compile),
        loss=loss,
    )
    if resume is not None:
        resume.check(module)  # a checkpoint of another model is refused before the run dir is touched
    trainer = build(cfg, "trainer", callbacks=build_each(cfg, "callbacks"), logger=loggers or False,
                    **checkpoint_writer(cfg))
    for needed in (RunRecorder, ResumeState, MemoryRecorder):
        callback(trainer, needed)
    refuse_a_second_monitor(cfg, trainer)
    wrap_each_layer(trainer.strategy, model)
    if resume is not None:
        trainer.loggers = continue_logs(trainer.loggers, resume.global_step)
    for logger in trainer.loggers:
        logger.log_hyperparams({"trainable_params": params.trainable, "total_params": params.total})
    return Assembled(injector, tokenizer, datamodule, model, module, trainer, params, backbone)


def checkpoint_writer(cfg: DictConfig) -> dict:
    """Checkpoints written whole or not at all (ftlab/atomic.py); FSDP keeps its own sharded writer."""
    return {} if uses_fsdp(cfg) else {"plugins": [AtomicCheckpointIO()]}


def refuse_a_second_monitor(cfg: DictConfig, trainer: L.Trainer) -> None:
    """Early stopping watches the metric and mode that pick the best checkpoint: `monitor`, `monitor_mode`."""
    for stopper in (c for c in trainer.callbacks if isinstance(c, EarlyStopping)):
        if (stopper.monitor, stopper.mode) != (cfg.monitor, cfg.monitor_mode):
            raise UserError(f"early stopping watches {stopper.monitor} ({stopper.mode}) but the best checkpoint "
                            f"is picked by monitor={cfg.monitor} ({cfg.monitor_mode})",
                            "set monitor= (and monitor_mode=) for both; leave callbacks.early_stopping.monitor "
                            "and .mode as ${monitor} and ${monitor_mode}")


def early_stopping_record(trainer: L.Trainer) -> dict | None:
    """results.json `early_stopping`: whether fit stopped early, at which epoch, and why (None: no such callback)."""
    stopper = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
    if stopper is None:
        return None
    stopped = stopper.stopping_reason_message is not None  # (set when it stops the run, only then)
    return {"monitor": stopper.monitor, "patience": stopper.patience, "min_delta": abs(float(stopper.min_delta)),
            "stopped": bool(stopped), "stopped_epoch": stopper.stopped_epoch if stopped else None,
            "epochs_run": trainer.current_epoch, "reason": stopper.stopping_reason_message if stopped else None}


def callback(trainer: L.Trainer, kind: type):
    """The run's callback of this class (conf/callbacks/ lists them); a config without it is refused."""
    found = next((c for c in trainer.callbacks if isinstance(c, kind)), None)
    if found is None:
        raise UserError(f"callbacks: no {kind.__module__}.{kind.__name__} among the run's callbacks",
                        f"keep it in the callbacks config (conf/callbacks/default.yaml lists it)")
    return found


def fit_and_test(cfg: DictConfig, run: Assembled, resume: Resume | None) -> tuple[str | None, dict]:
    """Train (a method that trains), then test the best checkpoint by `monitor`."""
    trainer = run.trainer
    if run.injector.trains:
        if trainer.strategy.root_device.type == "cpu":
            tune_for_cpu_training(run.model, keep_memory=cfg.cpu.keep_freed_memory,
                                  bulk_dropout=cfg.cpu.bulk_dropout and not cfg.compile)  # inductor has its own
        with warnings.catch_warnings():
            if resume is not None:  # its own checkpoints are there, as they should be
                warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=resume.checkpoint if resume else None)
        run.early_stopping = early_stopping_record(trainer)
    checkpoint = next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), None)
    best_path = checkpoint.best_model_path if checkpoint and checkpoint.best_model_path else None
    test_metrics = trainer.test(run.module, datamodule=run.datamodule, ckpt_path=best_path, verbose=False)[0]
    return best_path, test_metrics


def record(cfg: DictConfig, run: Assembled, best_path: str | None, test_metrics: dict, started: float,
           choices: dict | None, overrides: list[str] | None, resume: Resume | None) -> dict:
    """Rank 0: the tested weights into `model/` (and `export/`), then results.json."""
    output_dir = Path(cfg.paths.output_dir)
    saved, records = save_model(cfg, run, output_dir)
    recorder, datamodule = callback(run.trainer, RunRecorder), run.datamodule
    best = best_epoch(recorder.history, cfg.monitor, cfg.monitor_mode)
    val_confusion = run.module.val_confusion_at(best["epoch"], best["step"]) if best else None
    results = {
        "seed": cfg.seed,
        "choices": dict(choices or {}),
        "overrides": list(overrides or []),
        "resumed_from": resume.to_dict() if resume else None,
        "task": datamodule.task.to_dict(),
        "monitor": {"metric": cfg.monitor, "mode": cfg.monitor_mode},
        "best_epoch": best["epoch"] if best else None,
        "best_step": best["step"] if best else None,
        "best_checkpoint": str(Path(best_path).relative_to(output_dir)) if best_path else None,
        "val": {k: v for k, v in (best or {}).items() if k.startswith("val/")},
        "test": {k: float(v) for k, v in test_metrics.items()},
        "test_confusion_matrix": run.module.test_confusion_matrix,
        "test_per_class": run.module.test_per_class,
        "val_confusion_matrix": val_confusion,
        "val_per_class": per_class_scores(val_confusion, datamodule.task.label_names) if val_confusion else None,
        "test_per_label_f1": run.module.test_per_label_f1,
        "loss": run.module.loss_fn.to_dict(),
        "early_stopping": run.early_stopping,
        "precision": precision_record(cfg),
        "params": run.params.to_dict(),
        "saved": saved,
        "timing": {**recorder.summary(), "data_setup_seconds": round(datamodule.setup_seconds, 3),
                   "tokenization_cache_hit": datamodule.cache_hit,
                   "total_seconds": round(time.perf_counter() - started, 3)},
        "data": {**{k: v for k, v in datamodule.meta.items() if k != "task"}, "cache_key": datamodule.cache_key()},
        "history": recorder.history,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    results["memory"] = memory_report(cfg, run.model, run.injector, callback(run.trainer, MemoryRecorder))
    write_model_cards(output_dir, records, {"run_dir": str(output_dir), **results})
    predictions.write_run(output_dir, run.module, datamodule, best)  # predictions/test.jsonl, validation.jsonl
    results = completed(output_dir, results)
    (output_dir / "checkpoints" / RESUME_FILE).unlink(missing_ok=True)  # a completed run is not resumed
    return results


def run(cfg: DictConfig, choices: dict | None = None, overrides: list[str] | None = None,
        resume: Resume | None = None) -> dict:
    """check -> assemble -> fit and test -> record; returns results.json's content ({} off rank 0)."""
    started = time.perf_counter()
    cfg = checked(cfg, choices)
    try:
        assembled = assemble(cfg, resume)
        try:
            best_path, test_metrics = fit_and_test(cfg, assembled, resume)
        except RunInterrupted as stop:  # a signal: resume.ckpt is written; say so in results.json
            if assembled.trainer.is_global_zero:
                interrupted(cfg.paths.output_dir, cfg, stop.signal_name, stop.step, choices or {}, overrides or [])
            raise
        if not assembled.trainer.is_global_zero:  # under DDP every rank runs this function: rank 0 alone writes
            return {}
        return record(cfg, assembled, best_path, test_metrics, started, choices, overrides, resume)
    except OSError as err:  # a write ftlab/atomic.py does not own (logs, the tokenizer's files)
        if is_out_of_space(err):
            folder = Path(err.filename).parent if err.filename else Path(cfg.paths.output_dir)
            raise OutOfSpace(folder, None, "the run's files") from None
        raise


def metrics_table(results: dict) -> str:
    """A short table for the terminal: best validation and test metrics side by side."""
    names = sorted({k.split("/", 1)[1] for k in (*results["val"], *results["test"])})
    lines = [f"{'metric':<12}{'val (best)':>12}{'test':>10}"]
    for name in names:
        val, test = results["val"].get(f"val/{name}"), results["test"].get(f"test/{name}")
        fmt = lambda v: f"{v:.4f}" if isinstance(v, (int, float)) else "-"  # noqa: E731
        lines.append(f"{name:<12}{fmt(val):>12}{fmt(test):>10}")
    p, t = results["params"], results["timing"]
    lines.append(f"trainable params {p['trainable']:,} / {p['total']:,} ({p['percent']:.2f}%)")
    lines.append(f"train {t['train_seconds']:.1f}s ({t['train_samples_per_s'] or 0:.1f} samples/s), "
                 f"total {t['total_seconds']:.1f}s, peak RSS {t['peak_rss_bytes'] / 2**30:.2f} GiB")
    lines.append(f"results: {Path(results['run_dir']) / RESULTS_FILE}")
    return "\n".join(lines)
