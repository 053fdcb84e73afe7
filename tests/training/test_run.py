"""Whole runs in-process on tiny models: what results.json holds, checkpoints, task types."""

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from ftlab.results import RESULTS_FILE
from ftlab.run import run


def test_lora_run_writes_results_and_adapter_only_checkpoints(compose):
    cfg = compose("dataset=restaurant_sup", "peft=lora", "trainer.max_epochs=2", "save.export=true")
    results = run(cfg)
    out = results["run_dir"]
    on_disk = json.loads((Path(out) / RESULTS_FILE).read_text())
    assert on_disk["status"] == "completed"
    for key in ("test/accuracy", "test/macro_f1", "test/micro_f1", "test/loss"):
        assert 0.0 <= on_disk["test"][key] < 10
    for key in ("val/accuracy", "val/macro_f1", "val/micro_f1", "val/loss"):
        assert key in on_disk["val"]
    matrix = on_disk["test_confusion_matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix) and sum(map(sum, matrix)) == 2 * 16
    assert on_disk["task"]["num_labels"] == 3 and on_disk["task"]["label_names"] == ["negative", "neutral", "positive"]
    p = on_disk["params"]
    assert 0 < p["trainable"] < p["total"] and p["percent"] == pytest.approx(100 * p["trainable"] / p["total"], abs=1e-3)
    t = on_disk["timing"]
    assert t["train_samples"] == 2 * 4 * 8 and t["train_samples_per_s"] > 0 and t["peak_rss_bytes"] > 0
    assert len(on_disk["data"]["data_hash"]) == 64
    assert on_disk["data"]["split_sizes"] == {"train": 3452, "validation": 150, "test": 1120}
    assert [row["epoch"] for row in on_disk["history"]] == [0, 1]
    assert on_disk["seed"] == 42 and on_disk["versions"]["torch"].startswith("2.13")
    assert "git_commit" in on_disk

    assert on_disk["saved"] == {"model": "model", "export": "export"}
    assert (Path(out) / "model" / "adapter_config.json").is_file()  # PEFT's own format
    assert (Path(out) / "model" / "tokenizer.json").is_file()
    assert (Path(out) / "export" / "config.json").is_file() and (Path(out) / "export" / "model.safetensors").is_file()

    ckpt = torch.load(f"{out}/{on_disk['best_checkpoint']}", map_location="cpu", weights_only=False)
    saved = set(ckpt["state_dict"])
    assert saved and all(("lora_" in k or "classifier" in k or "buffer" in k or k.endswith("_ids")) for k in saved)
    assert not any(k.endswith("attention.self.query.base_layer.weight") for k in saved)  # frozen backbone not stored


def test_full_checkpoint_holds_every_weight(compose):
    results = run(compose("dataset=acl_sup", "peft=full"))
    ckpt = torch.load(f"{results['run_dir']}/{results['best_checkpoint']}", map_location="cpu", weights_only=False)
    assert results["params"]["trainable"] == results["params"]["total"]
    n_saved = sum(v.numel() for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    assert n_saved >= results["params"]["total"]


def test_test_metrics_come_from_the_best_checkpoint(compose):
    """Monitor val/loss over 3 epochs; re-evaluating the best checkpoint reproduces test/*."""
    from ftlab.config import build
    from ftlab.models.module import ClassifierModule

    cfg = compose("dataset=acl_sup", "peft=full", "trainer.max_epochs=3", "monitor=val/loss", "optimizer.lr=0.05")
    results = run(cfg)
    best = results["best_epoch"]
    losses = [row["val/loss"] for row in results["history"]]
    assert best == losses.index(min(losses))
    assert results["best_checkpoint"] == f"checkpoints/best-epoch{best:02d}-step{results['best_step']:06d}.ckpt"
    assert results["val"]["val/loss"] == pytest.approx(min(losses))

    backbone = build(cfg, "model")
    tokenizer = backbone.load_tokenizer()
    datamodule = build(cfg, "data", source=build(cfg, "dataset"), tokenizer=tokenizer, seed=cfg.seed)
    datamodule.setup()
    injector = build(cfg, "peft")
    built = backbone.build(datamodule.task, tokenizer)
    module = ClassifierModule(injector.inject(built.model, built.new_parameters), datamodule.task, injector,
                              optimizer=build(cfg, "optimizer"))
    trainer = L.Trainer(logger=False, enable_progress_bar=False, limit_test_batches=2, enable_checkpointing=False)
    again = trainer.test(module, datamodule=datamodule, verbose=False,
                         ckpt_path=f"{results['run_dir']}/{results['best_checkpoint']}")[0]
    assert again == pytest.approx(results["test"], abs=1e-6)


def test_regression_task_stsb(compose):
    results = run(compose("dataset=glue", "dataset.subset=stsb", "peft=full"))
    assert results["task"]["task_type"] == "regression" and results["task"]["num_labels"] == 1
    assert {"test/mse", "test/pearson", "test/spearman", "test/loss"} <= set(results["test"])
    assert results["monitor"] == {"metric": "val/pearson", "mode": "max"}


@pytest.mark.parametrize("subset,metric", [("cola", "test/mcc"), ("mrpc", "test/f1")])
def test_glue_task_metrics(compose, subset, metric):
    results = run(compose("dataset=glue", f"dataset.subset={subset}"))
    assert metric in results["test"] and "test/accuracy" in results["test"]


def test_same_seed_same_metrics(compose):
    a = run(compose("dataset=acl_sup", "peft=full", "seed=3"))
    b = run(compose("dataset=acl_sup", "peft=full", "seed=3"))
    assert a["test"] == b["test"] and a["history"][0]["train/loss"] == b["history"][0]["train/loss"]


def test_each_run_of_a_process_measures_its_own_peak_rss():
    """In-process sweeps: the peak is reset at each run's start, so a big earlier run does not leak.
    (A fresh process, so that this test's own peak is not the test session's.)"""
    import subprocess
    import sys

    script = (
        "import numpy\n"
        "from ftlab.rss import peak_rss_bytes, reset_peak_rss\n"
        "big = numpy.ones(100_000_000); during = peak_rss_bytes(); del big\n"
        "reset_peak_rss(); print(during, peak_rss_bytes())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    during, after = map(int, out.stdout.split())
    assert after < during - 600 * 2**20  # the 800 MB array is gone from the new peak


def test_a_diverging_run_stops_with_a_clear_message(compose):
    from ftlab.errors import UserError

    cfg = compose("dataset=acl_sup", "peft=full", "optimizer.lr=1e30", "trainer.gradient_clip_val=null")
    with pytest.raises(UserError, match="training diverged") as err:
        run(cfg)
    assert "optimizer.lr" in err.value.fix


@pytest.mark.slow  # inductor compiles for about a minute on a 2-core CPU
def test_compiled_run_keeps_plain_parameter_names(compose):
    cfg = compose("compile=true")
    results = run(cfg)
    assert results["status"] == "completed"
    checkpoint = torch.load(Path(cfg.paths.output_dir) / results["best_checkpoint"], weights_only=False)
    assert checkpoint["state_dict"] and not any("_orig_mod" in key for key in checkpoint["state_dict"])
