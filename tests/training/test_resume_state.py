"""Resuming changes no process-wide state: the saved config's `${hydra:...}` are answered from the
run's own .hydra/hydra.yaml, with Hydra's `hydra` resolver left as it is; the logs go on through
ftlab's loggers' own `continue_at` (metrics.csv keeps its earlier rows to the digit, TensorBoard
hides the killed process's later events)."""

from __future__ import annotations

import csv
import logging

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch import loggers as pl_loggers
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ftlab.config import CONF_DIR
from ftlab.loggers import CSVLogger, TensorBoardLogger
from ftlab.config.saved import answer_hydra
from ftlab.resume import continue_logs, prepare


def saved_run(folder, config: str):
    """A run folder as Hydra and a step checkpoint leave it, for dataset=acl_sup."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(config)
    (folder / ".hydra" / "overrides.yaml").write_text("- dataset=acl_sup\n")
    (folder / ".hydra" / "hydra.yaml").write_text(
        f"hydra:\n  job:\n    num: 3\n  runtime:\n    output_dir: {folder}\n"
        "    choices:\n      dataset: acl_sup\n      hydra/launcher: basic\n")
    (folder / "checkpoints").mkdir()
    torch.save({"global_step": 7}, folder / "checkpoints" / "resume.ckpt")
    return folder


def test_resume_answers_hydra_from_the_run_and_leaves_the_resolver_to_hydra(tmp_path):
    folder = saved_run(tmp_path / "run", "paths:\n  output_dir: ${hydra:runtime.output_dir}\nstudy:\n  epochs:\n"
                       "    acl_sup: 5\ntrainer:\n  max_epochs: ${oc.select:study.epochs.${hydra:runtime.choices.dataset},2}\n"
                       "job: ${hydra:job.num}\nlabel: run ${hydra:job.num} of ${hydra:runtime.choices.dataset}\n")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        this_job = compose(config_name="config", return_hydra_config=True, overrides=[f"paths.output_dir={tmp_path}"])
    before = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(this_job)  # a Hydra job of this process, as a sweep's would be
    probe = OmegaConf.create({"dataset": "${hydra:runtime.choices.dataset}"})
    try:
        assert probe.dataset == "restaurant_sup"
        cfg, resume = prepare([f"resume={folder}"])
        assert probe.dataset == "restaurant_sup"  # still Hydra's resolver, answering for this job
    finally:
        HydraConfig.instance().cfg = before
    assert cfg.trainer.max_epochs == 5 and cfg.job == 3 and cfg.label == "run 3 of acl_sup"
    assert "${hydra:" not in OmegaConf.to_yaml(cfg) and cfg.paths.output_dir == str(folder)
    assert resume.global_step == 7 and resume.choices == {"dataset": "acl_sup"}


def test_only_the_hydra_calls_are_answered():
    hydra = OmegaConf.create({"runtime": {"choices": {"model": "tiny_bert"}, "n": [1, 2]}})
    node = {"a": ["${hydra:runtime.n}", r"\${hydra:runtime.n}"], "b": "${oc.env:HOME}/${hydra: runtime.choices.model }"}
    assert answer_hydra(node, hydra) == {"a": [[1, 2], r"\${hydra:runtime.n}"], "b": "${oc.env:HOME}/tiny_bert"}


def read_csv(path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_metrics_csv_keeps_the_rows_before_the_checkpoint_as_written(tmp_path):
    killed = CSVLogger(tmp_path, name="csv", version="")
    for step in range(10):
        killed.log_metrics({"train/loss": 1 / (step + 1), "epoch": 0}, step)
    killed.save()
    written = read_csv(tmp_path / "csv" / "metrics.csv")

    resumed = CSVLogger(tmp_path, name="csv", version="")
    assert resumed.continue_at(6) is resumed
    for step in range(6, 8):
        resumed.log_metrics({"train/loss": 9.0, "epoch": 0, "val/loss": 0.5}, step)
    resumed.save()
    rows = read_csv(tmp_path / "csv" / "metrics.csv")
    assert [r["step"] for r in rows] == [str(s) for s in range(8)]
    assert [{k: v for k, v in r.items() if k != "val/loss"} for r in rows[:6]] == written[:6]
    assert rows[6]["train/loss"] == "9.0" and rows[0]["val/loss"] == ""


def test_tensorboard_hides_the_events_after_the_checkpoint(tmp_path):
    def logged(logger, steps, value):
        for step in steps:
            logger.log_metrics({"train/loss": value}, step)
        logger.finalize("success")

    logged(TensorBoardLogger(tmp_path, name="tb", version="", flush_secs=1), range(10), 1.0)
    resumed = TensorBoardLogger(tmp_path, name="tb", version="", flush_secs=1).continue_at(6)
    logged(resumed, range(6, 8), 2.0)
    events = EventAccumulator(str(tmp_path / "tb")).Reload().Scalars("train/loss")
    assert [(e.step, e.value) for e in events] == [(s, 1.0) for s in range(6)] + [(6, 2.0), (7, 2.0)]


def test_continue_logs_uses_ftlab_loggers_and_names_the_others(tmp_path, caplog):
    csv_logger = CSVLogger(tmp_path, name="csv", version="")
    tb_logger = TensorBoardLogger(tmp_path, name="tb", version="", default_hp_metric=False)
    other = pl_loggers.CSVLogger(tmp_path, name="other", version="")
    with caplog.at_level(logging.WARNING, logger="ftlab.resume"):
        out = continue_logs([csv_logger, tb_logger, other], 4)
    assert out[0] is csv_logger and out[2] is other
    assert type(out[1]) is TensorBoardLogger and out[1] is not tb_logger
    assert out[1].log_dir == tb_logger.log_dir  # (the purge itself: the test above)
    assert [r.getMessage() for r in caplog.records] == [
        "CSVLogger is not continued: what it logged from step 4 on before the kill stays"]


@pytest.mark.parametrize("target", ["ftlab.loggers.CSVLogger", "ftlab.loggers.TensorBoardLogger"])
def test_the_logger_configs_build_ftlab_loggers(target):
    name = "csv" if "CSV" in target else "tensorboard"
    node = OmegaConf.load(f"{CONF_DIR}/logger/{name}.yaml")[name]
    assert node._target_ == target
