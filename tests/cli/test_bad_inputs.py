"""The bad-input catalogue: every mistake a user makes, through the real CLI in a subprocess.

Each case must exit != 0 with a short message naming the problem (and, for ftlab's own errors, the
fix), print no traceback, and leave an earlier run's folder byte-for-byte unchanged. A case is
(overrides, a data preparation step or None, fragments the output must contain); how one runs, and
the cases every dataset choice gets (FTLAB_CONFIG_PATH's included), are in tests/support/catalogue.py.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.cli import DATA_DIR
from ftlab.config import group_options
from support.catalogue import Case, check_outcome, dataset_cases, run_case


# ---- data preparations: each returns extra overrides pointing at the broken copy ---------------------

def acl_copy(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(DATA_DIR / "acl_sup", root / "acl_sup")
    return root


def acl_with(change: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def prepare(tmp_path: Path) -> list[str]:
        root = acl_copy(tmp_path)
        change(root / "acl_sup" / "train.jsonl")
        return ["dataset=acl_sup", f"paths.data_dir={root}"]
    return prepare


def replace_line(n: int, text: str) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        lines = path.read_text().split("\n")
        lines[n - 1] = text
        path.write_text("\n".join(lines))
    return change


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut inside a JSON object


def non_utf8(path: Path) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b"the", b"th\xe9", 1)  # Latin-1 e-acute
    path.write_bytes(b"\n".join(lines))


def missing_test_split(tmp_path: Path) -> list[str]:
    root = acl_copy(tmp_path)
    (root / "acl_sup" / "test.jsonl").unlink()
    return ["dataset=acl_sup", f"paths.data_dir={root}"]


def local_files(train: str, test: str, suffix: str = ".csv", **extra: str) -> Callable[[Path], list[str]]:
    def prepare(tmp_path: Path) -> list[str]:
        (tmp_path / f"train{suffix}").write_text(train)
        (tmp_path / f"test{suffix}").write_text(test)
        return ["dataset=local", f"dataset.train={tmp_path / f'train{suffix}'}",
                f"dataset.test={tmp_path / f'test{suffix}'}", *(f"dataset.{k}={v}" for k, v in extra.items())]
    return prepare


GOOD_CSV = "text,label\n" + "".join(f"review number {i} was {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}\n"
                                     for i in range(40))

# name: (overrides, prepare, fragments of the message)
CATALOGUE: dict[str, Case] = {
    # ---- config: unknown choices, keys and settings
    "unknown model": (["model=robrta"], None, ["model/robrta", "minilm", "tiny_bert"]),
    "unknown peft method": (["peft=lorra"], None, ["peft/lorra", "lora", "houlsby"]),
    "unknown dataset subset": (["dataset=glue", "dataset.subset=sst3"], None, ["dataset.subset", "sst2", "stsb"]),
    "unknown top-level key": (["learning_rate=0.1"], None, ["learning_rate", "not in struct"]),
    "unknown setting of a method": (["+peft.rank=4"], None, ["peft.rank", "valid settings", "alpha"]),
    "unknown experiment": (["experiment=study999"], None, ["experiment/study999", "study000_full_ft"]),
    # ---- wrong types
    "integer expected": (["trainer.max_epochs=abc"], None, ["trainer.max_epochs", "integer"]),
    "number expected": (["optimizer.lr=fast"], None, ["optimizer.lr", "number"]),
    "list expected": (["peft.target_modules=query"], None, ["peft.target_modules", "list"]),
    # ---- out of range
    "negative learning rate": (["optimizer.lr=-0.001"], None, ["Invalid learning rate: -0.001", "positive optimizer.lr"]),
    "batch size 0": (["data.batch_size=0"], None, ["data.batch_size", "positive"]),
    "max length 0": (["data.max_length=0"], None, ["data.max_length", "positive"]),
    "LoRA rank 0": (["peft.r=0"], None, ["peft.r=0", "positive"]),
    "reduction factor above the hidden size": (["peft=houlsby", "peft.reduction_factor=64"], None,
                                               ["reduction_factor", "hidden size 32"]),
    "dropout 1.5": (["model=minilm", "model.dropout=1.5"], None, ["model.dropout", "[0, 1)"]),
    "threshold above 1": (["dataset=goemotions", "dataset.threshold=1.5"], None, ["dataset.threshold", "between 0 and 1"]),
    "evaluation interval 0": (["eval_every_n_steps=0"], None, ["eval_every_n_steps", "positive"]),
    "subset of 0 examples": (["data.max_examples.train=0"], None, ["data.max_examples.train", "positive"]),
    "unknown monitored metric": (["monitor=val/acc"], None, ["monitor", "val/accuracy", "val/macro_f1"]),
    "unknown monitor mode": (["monitor=val/loss", "monitor_mode=lowest"], None, ["monitor_mode", "min", "max"]),
    "invalid precision": (["trainer.precision=17"], None, ["trainer.precision", "bf16-mixed", "32-true"]),
    "library refuses a strategy": (["trainer.strategy=nonsense"], None, ["trainer", "nonsense"]),
    # ---- CUDA-only on a CPU
    "fp16 on CPU": (["trainer.precision=16-mixed"], None, ["needs a CUDA GPU", "bf16-mixed"]),
    "GPU accelerator on CPU": (["trainer.accelerator=gpu"], None, ["needs a CUDA GPU", "trainer.accelerator=cpu"]),
    "FSDP on CPU": (["trainer=fsdp"], None, ["trainer=fsdp", "needs a CUDA GPU", "trainer=ddp"]),
    # ---- model / method mismatches
    "QLoRA on a random model": (["peft=qlora"], None, ["4-bit loading (peft=qlora) needs pretrained weights", "model.pretrained"]),
    "pooler trained on a model without one": (["model=tiny_roberta", "model.train_pooler=true"], None,
                                              ["has no pooler", "model.train_pooler=false"]),
    "BitFit on a model without biases": (["model=tiny_llama", "peft=bitfit"], None, ["BitFit needs bias terms", "peft=lora"]),
    "model folder that does not exist": (["model.pretrained=/nonexistent/model"], None, ["/nonexistent/model", "check"]),
    # ---- training and resuming (more resume refusals: tests/training/test_resume.py)
    "loss goes NaN": (["dataset=acl_sup", "peft=full", "optimizer.lr=1e30", "trainer.gradient_clip_val=null"], None,
                      ["training diverged", "lower optimizer.lr"]),
    "resume dir that does not exist": (["resume=/nonexistent/run"], None, ["/nonexistent/run", "fix:"]),
    # ---- data files
    "data folder missing": (["dataset=acl_sup", "paths.data_dir=/nonexistent/data"], None,
                            ["/nonexistent/data/acl_sup/train.jsonl", "FTLAB_DATA_DIR"]),
    "one split file missing": ([], missing_test_split, ["acl_sup/test.jsonl", "JSON"]),
    "empty file": ([], acl_with(lambda p: p.write_text("")), ["train.jsonl", "no data rows"]),
    "truncated file": ([], acl_with(truncate), ["train.jsonl", "line", "invalid JSON"]),
    "non-UTF-8 bytes": ([], acl_with(non_utf8), ["train.jsonl", "line 5", "UTF-8"]),
    "malformed row": ([], acl_with(replace_line(7, '{"text": "cut off')), ["train.jsonl", "line 7"]),
    "unknown label": ([], acl_with(replace_line(3, json.dumps({"text": "We use X.", "label": "Inspiration"}))),
                      ["'Inspiration'", "line 3", "Background", "CompareOrContrast"]),
    "text column that does not exist": ([], local_files(GOOD_CSV, GOOD_CSV, text_column="body"), ["body", "text"]),
    "label column that does not exist": ([], local_files(GOOD_CSV, GOOD_CSV, label_column="stars"), ["stars", "label"]),
    "wrongly formatted file (TSV read as CSV)": ([], local_files(GOOD_CSV.replace(",", "\t"), GOOD_CSV), ["train.csv", "text"]),
    "empty split (header only)": ([], local_files(GOOD_CSV, "text,label\n"), ["test.csv", "no data rows"]),
    "test label unseen in train": ([], local_files(GOOD_CSV, GOOD_CSV + "a new kind of review,meh\n"),
                                   ["'meh'", "neg", "pos"]),
    "file of an unknown format": ([], local_files(GOOD_CSV, GOOD_CSV, suffix=".xlsx"), ["xlsx", "csv", "jsonl"]),
}


CATALOGUE.update({k: case for name in group_options("dataset") for k, case in dataset_cases(name, DATA_DIR).items()})


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every case at once, a process per core: each is a CLI start (torch, Lightning, transformers
    imports) that fails early, so the catalogue costs its imports, not its runs."""
    root = tmp_path_factory.mktemp("catalogue")
    workers = max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(workers) as pool:
        futures = {case: pool.submit(run_case, CATALOGUE[case], root / f"case{i:02d}") for i, case in enumerate(CATALOGUE)}
        return {case: future.result() for case, future in futures.items()}


def test_the_catalogue_holds_at_least_30_cases():
    assert len(CATALOGUE) >= 30


def test_every_dataset_choice_has_its_cases():
    for name in group_options("dataset"):
        assert f"dataset {name}: unknown setting" in CATALOGUE


@pytest.mark.parametrize("case", list(CATALOGUE))
def test_bad_input(outcomes, case):
    check_outcome(outcomes[case], CATALOGUE[case][2])
