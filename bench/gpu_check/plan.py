"""What the GPU check runs, decided before anything runs: the settings of the H200 run and of the CPU
dry run, the random models it saves, and one job list (benchmark, estimate, path checks). Both modes
run the same list; the dry run differs only in sizes and in the CUDA-only bits (CPU_STANDIN says
what it does instead), so a renamed config group or a changed contender breaks the dry run too."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from bench.common import BF16, write_json

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "ftlab" / "conf" / "model"
PROBE = "bench.gpu_check.probe.SyncedStepProbe"
# bench/run.py's names: ftlab's full fine-tuning, the HF Trainer at its best (dynamic padding + length grouping)
CONTENDERS = ("ftlab-full-bf16", "hf-grouped-bf16")

# roberta-base's config.json, except what the carried tokenizer (MiniLM's: no weights travel) decides:
# vocab_size (its 30522) and type_vocab_size (transformers' 2, not roberta-base's 1: a BERT tokenizer
# marks a sentence pair's second segment 1). Neither enters the matmul FLOPs.
ROBERTA_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
                "max_position_embeddings": 514, "layer_norm_eps": 1e-5}
# tiny_llama scaled up (about 100M matmul parameters), so that QLoRA quantises Linear layers of a real size
LLAMA_SCALED = {"hidden_size": 1024, "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 8,
                "head_dim": 64, "intermediate_size": 2816, "max_position_embeddings": 512}

# (name, overrides, what it exercises); the cheap ones first, compile (the slowest) last
CHECKS = (
    ("fp16-mixed", ["trainer.precision=16-mixed"], "fp16 autocast with Lightning's gradient scaler"),
    ("gradient-checkpointing", ["model.gradient_checkpointing=true"], "activations recomputed in the backward"),
    ("paged-adamw-32bit", ["optimizer=paged_adamw_32bit"], "bitsandbytes' paged AdamW (CUDA unified memory), 32-bit states"),
    ("paged-adamw-8bit", ["optimizer=paged_adamw_8bit"], "bitsandbytes' paged AdamW, 8-bit states"),
    ("qlora", ["peft=qlora"], "4-bit NF4 base (bitsandbytes) + LoRA, bf16 compute, gradient checkpointing (its default)"),
    ("fsdp", ["trainer=fsdp", "trainer.devices=1"], "Lightning's FSDP on one GPU (a process group of 1), ftlab's "
     "per-layer wrapping, its sharded checkpoint reloaded for the test"),
    ("compile", ["compile=true"], "torch.compile (inductor, dynamic shapes) of the model, training and evaluation"),
)
NEEDS_BITSANDBYTES = ("paged-adamw-32bit", "paged-adamw-8bit", "qlora")
CPU_STANDIN = {  # what the dry run does instead of the CUDA path, printed in its report
    "fp16-mixed": "not run on CPU: checks that ftlab refuses it before starting (config/checks.py)",
    "fsdp": "not run on CPU: checks that ftlab refuses it before starting (config/checks.py)",
    "paged-adamw-32bit": "runs unpaged on CPU (ftlab's own substitution: torch AdamW)",
    "paged-adamw-8bit": "runs unpaged on CPU (ftlab's own substitution: bitsandbytes' AdamW8bit)",
    "qlora": "bitsandbytes' CPU 4-bit kernels, float32 compute",
    "compile": "torch.compile disabled (disable=True; TORCH_COMPILE_DISABLE=1 with --processes): ftlab's compile path "
               "without tracing, as tracing and inductor take a minute on 2 CPUs",
}


@dataclasses.dataclass
class Settings:
    dry_run: bool
    reps: int  # A B rounds of the benchmark
    warmup: int  # optimizer steps before the timed window
    steps: int  # timed steps
    batch_size: int
    eval_batch_size: int
    train_examples: int | None  # a subset (the dry run's); None: all 3452
    eval_examples: int | None
    threads: int
    encoder: dict  # config_overrides of the benchmark's roberta
    decoder: dict  # QLoRA's llama
    check_encoder: dict  # the other path checks' roberta
    check_examples: dict
    check_batch: int
    peak_n: int  # the square bf16 matmul of the measured peak
    budget_s: float  # no job starts later than this after the start
    deadline_s: float  # and none runs past this
    job_timeout_s: float


def tiny(name: str) -> dict:
    """A tiny test model's config_overrides, read from its own conf/model/<name>.yaml."""
    return dict(yaml.safe_load((MODELS / f"{name}.yaml").read_text())["config_overrides"])


def settings(dry_run: bool, **changes) -> Settings:
    if dry_run:
        s = Settings(True, reps=1, warmup=1, steps=2, batch_size=4, eval_batch_size=8, train_examples=32,
                     eval_examples=16, threads=1, encoder=tiny("tiny_roberta"), decoder=tiny("tiny_llama"),
                     check_encoder=tiny("tiny_roberta"), check_examples={"train": 16, "validation": 8, "test": 8},
                     check_batch=4, peak_n=256, budget_s=240, deadline_s=300, job_timeout_s=120)
    else:  # about 5 minutes, estimated (13 processes of 10-25 s, compile ~1 min); the budget keeps it under 8
        s = Settings(False, reps=2, warmup=10, steps=60, batch_size=32, eval_batch_size=64, train_examples=None,
                     eval_examples=None, threads=4, encoder=ROBERTA_BASE, decoder=LLAMA_SCALED,
                     check_encoder={**ROBERTA_BASE, "num_hidden_layers": 4},  # compiles in a third of the time
                     check_examples={"train": 256, "validation": 64, "test": 64}, check_batch=16, peak_n=8192,
                     budget_s=390, deadline_s=450, job_timeout_s=240)
    return dataclasses.replace(s, **{k: v for k, v in changes.items() if v is not None})


def make_bench(s: Settings):
    """bench.run's Bench with the benchmark's own options: its ftlab overrides, HF specs and windows."""
    from bench.run import Bench, parse_args

    argv = ["--contenders", ",".join(CONTENDERS), "--epoch-reps", "0", "--once", "", "--reps", str(s.reps),
            "--warmup", str(s.warmup), "--steps", str(s.steps), "--batch-size", str(s.batch_size),
            "--eval-batch-size", str(s.eval_batch_size), "--threads", str(s.threads)]
    for flag, n in (("--train-examples", s.train_examples), ("--eval-examples", s.eval_examples)):
        argv += [flag, str(n)] if n else []
    return Bench(parse_args(argv))


def swap(overrides: list[str], values: dict) -> list[str]:
    """`overrides` with the entries of these keys replaced (or appended): one value per key."""
    out = [o for o in overrides if o.split("=", 1)[0] not in values]
    return out + [f"{k}={v}" for k, v in values.items()]


def prepare_job(s: Settings, bench, tokenizer: str) -> tuple[dict, dict]:
    """The first job (bench/gpu_check/prepare.py: the random models, the matmul peak) and the
    folders it will save the models in, which every later job is planned with."""
    models = {key: {"dir": str(bench.work / f"random-{arch}"), "architecture": arch, "config": config}
              for key, arch, config in (("encoder", "roberta", s.encoder), ("decoder", "llama", s.decoder))}
    spec = {"settings": dataclasses.asdict(s), "models": models, "tokenizer": tokenizer,
            "out": str(bench.work / "prepared.json")}
    path = bench.work / "prepare.spec.json"
    write_json(path, spec)
    return {"kind": "prepare", "name": "prepare", "spec": str(path), "out": spec["out"]}, models


def bench_jobs(s: Settings, bench, models: dict) -> list[dict]:
    """ftlab and the HF Trainer alternating (A B A B ...: a drift of the machine's speed hits both),
    each a window run of bench/run.py's own making, on the saved encoder."""
    encoder, jobs = models["encoder"]["dir"], []
    for rep in range(s.reps):
        for contender in CONTENDERS:
            name = f"window-r{rep}-{contender}"
            record = {"phase": "train", "rep": rep, "epoch": False, "window": bench.window(contender),
                      "precision": BF16, "contender": contender}
            if contender.startswith("ftlab-"):
                run_dir = bench.work / name
                args = bench.ftlab_overrides(run_dir, "full", BF16, bench.shared_cache, "train", False)
                args = swap(args, {"model": "roberta", "model.pretrained": encoder,
                                   "+callbacks.bench_probe._target_": PROBE})
                jobs.append({"kind": "ftlab", "name": name, "args": args, "record": {**record, "run_dir": str(run_dir)}})
            else:
                spec = {**bench.spec(name, contender), "model_dir": encoder, "device": "cpu" if s.dry_run else "cuda"}
                path = bench.work / f"{name}.spec.json"
                write_json(path, spec)
                jobs.append({"kind": "hf", "name": name, "spec": str(path), "out": spec["out"], "record": record})
    return jobs


def estimate_job(s: Settings, bench, models: dict) -> dict:
    """`ftlab estimate --json` of the benchmark's ftlab configuration (batch x max_length 128)."""
    args = ["model=roberta", f"model.pretrained={models['encoder']['dir']}", "peft=full", "dataset=restaurant_sup",
            f"trainer.precision={BF16}", f"data.batch_size={s.batch_size}", "data.max_length=128"]
    return {"kind": "estimate", "name": "estimate", "args": args, "out": str(bench.work / "estimate.json")}


def check_jobs(s: Settings, bench, models: dict, tokenizer: str, bitsandbytes: bool) -> list[dict]:
    """Each CUDA-only path as a short real run: train an epoch of a small subset, validate, keep the
    best checkpoint, test it."""
    jobs = []
    for name, overrides, what in CHECKS:
        run_dir = bench.work / f"check-{name}"
        args = ["dataset=restaurant_sup", "peft=full", "seed=42", f"threads={s.threads}", f"trainer.precision={BF16}",
                f"data.batch_size={s.check_batch}", f"data.eval_batch_size={2 * s.check_batch}", "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false", "save.model=false", "logger=none",
                f"data.cache_dir={bench.shared_cache}", f"hydra.run.dir={run_dir}"]
        args += [f"data.max_examples.{split}={n}" for split, n in s.check_examples.items()]
        if name == "qlora":
            args += ["model=llama", f"model.pretrained={models['decoder']['dir']}"]
        else:
            args += ["model=tiny_roberta", f"model.tokenizer={tokenizer}"]
            args += [f"model.config_overrides.{k}={v}" for k, v in s.check_encoder.items()]
        job = {"kind": "ftlab", "name": f"check-{name}", "args": swap(args, dict(o.split("=", 1) for o in overrides)),
               "record": {"run_dir": str(run_dir)},
               "check": {"name": name, "overrides": overrides, "what": what,
                         "cpu_standin": CPU_STANDIN.get(name) if s.dry_run else None}}
        if name in NEEDS_BITSANDBYTES and not bitsandbytes:
            job.update(kind="skip", reason="bitsandbytes is not installed (make gpu-bundle carries it)")
        elif s.dry_run and name in ("fp16-mixed", "fsdp"):
            job["kind"] = "refusal"
        elif s.dry_run and name == "compile":
            job.update(compile_kwargs={"disable": True}, env={"TORCH_COMPILE_DISABLE": "1"})  # shared / --processes
        jobs.append(job)
    return jobs
