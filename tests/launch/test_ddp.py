"""DDP on CPU: 2 processes (gloo) train like one process at twice the batch, and write once.

The batch sampler gives each rank every second example of the one-process batch
(ftlab/data/batching.py), so with dropout off the averaged gradients, and so the metrics, equal a
single process's up to float summation order.
"""

from __future__ import annotations

import json

import pytest

from support.cli import run_cli

COMMON = ["threads=1", "trainer.precision=32-true", "model=tiny_bert", "peft=full", "+model.dropout=0.0", "dataset=acl_sup", "optimizer.lr=1e-3",
          "trainer.max_epochs=2", "trainer.limit_train_batches=6", "trainer.limit_val_batches=3",
          "trainer.limit_test_batches=3", "trainer.enable_progress_bar=false", "logger=csv"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    out = {}
    for name, extra in (("single", ["data.batch_size=8", "data.eval_batch_size=16"]),
                        ("ddp", ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                                 "data.batch_size=4", "data.eval_batch_size=8"])):
        proc = run_cli(*COMMON, *extra, f"hydra.run.dir={root / name}", timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[name] = (root / name, json.loads((root / name / "results.json").read_text()))
    return out


def test_two_processes_train_like_one_at_twice_the_batch(runs):
    (_, single), (_, ddp) = runs["single"], runs["ddp"]
    assert ddp["config"]["trainer"]["strategy"] == "ddp"
    for key, value in single["test"].items():
        assert ddp["test"][key] == pytest.approx(value, abs=1e-4), key
    assert len(ddp["history"]) == len(single["history"])
    for row_ddp, row_single in zip(ddp["history"], single["history"]):
        for key in ("val/loss", "val/accuracy", "val/macro_f1"):
            assert row_ddp[key] == pytest.approx(row_single[key], abs=1e-4), (row_ddp["step"], key)
        assert row_ddp["step"] == row_single["step"]
    assert ddp["timing"]["train_samples"] == single["timing"]["train_samples"]  # all ranks counted


def test_rank_zero_alone_writes(runs):
    run_dir, ddp = runs["ddp"]
    assert len(list(run_dir.rglob("results.json"))) == 1
    assert len(list(run_dir.rglob("metrics.csv"))) == 1
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.suffix == ".ckpt") == \
        sorted(p.name for p in (runs["single"][0] / "checkpoints").iterdir() if p.suffix == ".ckpt")
    assert (run_dir / "model").is_dir() and ddp["status"] == "completed"


def test_the_predictions_file_gathers_every_rank_once(runs):
    """Each rank predicts a share of the test split; rank 0 writes them all, each example once, as the
    single process predicted them."""
    from ftlab import predictions

    single, ddp = (predictions.load(runs[name][0], "test") for name in ("single", "ddp"))
    assert [r["index"] for r in ddp] == [r["index"] for r in single] and len(ddp) == 48  # 3 batches of 16
    assert [r["pred"] for r in ddp] == [r["pred"] for r in single]
    assert [r["text"] for r in ddp] == [r["text"] for r in single]
    for a, b in zip(ddp, single):
        assert a["probs"] == pytest.approx(b["probs"], abs=1e-4)
    matrix = runs["ddp"][1]["test_confusion_matrix"]
    assert sum(map(sum, matrix)) == len(ddp)
