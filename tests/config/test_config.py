"""One truth per setting and checks at composition: the precedence rules (conf/config.yaml states
them), the schema's errors, and the CLI refusing bad values, helper presets and bad sweep points
before any job starts or any folder exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig

from support.cli import REPO, TINY, run_cli
from ftlab.config import checked, compose
from ftlab.errors import UserError


def composed(*overrides: str):
    cfg = compose(list(overrides))
    return checked(cfg, dict(HydraConfig.get().runtime.choices))


# ---- precedence, lowest first: method recommendation < chosen group option < preset < command line
@pytest.mark.parametrize("peft, lr", [("full", 5e-5), ("lora", 3e-3), ("ia3", 1e-2), ("prompt", 3e-2)])
def test_a_method_brings_its_learning_rate_to_an_optimizer_without_one(peft, lr):
    assert composed(f"peft={peft}").optimizer.lr == lr
    assert composed(f"peft={peft}", "optimizer=adamw_8bit").optimizer.lr == lr


@pytest.mark.parametrize("peft", ["full", "lora", "houlsby"])
def test_a_chosen_optimizer_that_sets_lr_is_not_replaced_by_the_method(peft):
    assert composed(f"peft={peft}", "optimizer=sgd").optimizer.lr == 1e-2


def test_a_preset_wins_over_the_method_and_the_command_line_over_both():
    assert composed("experiment=study001_peft", "peft=lora").optimizer.lr == 5e-4  # LoRA alone: 3e-3
    assert composed("experiment=study001_peft", "peft=lora").peft.r == 32          # its method part
    assert composed("experiment=study001_peft", "optimizer.lr=0.2").optimizer.lr == 0.2
    assert composed("peft=lora", "optimizer=sgd", "optimizer.lr=0.3").optimizer.lr == 0.3


def test_qlora_follows_model_gradient_checkpointing():
    assert composed("peft=qlora").model.gradient_checkpointing is True
    assert composed("peft=qlora", "model.gradient_checkpointing=false").model.gradient_checkpointing is False
    assert "gradient_checkpointing" not in composed("peft=qlora").peft
    assert not composed("peft=lora").model.get("gradient_checkpointing")


def test_the_cache_directory_is_defined_once(monkeypatch, tmp_path):
    monkeypatch.setenv("FTLAB_CACHE_DIR", str(tmp_path / "cache"))
    assert composed().paths.cache_dir == str(tmp_path / "cache")
    readers = [p for p in (REPO / "ftlab").rglob("*.py")  # code that reads the variable or builds the path
               if re.search(r"environ[^\n]{0,12}FTLAB_CACHE_DIR|\.cache.{0,6}ftlab", p.read_text())]
    assert [p.name for p in readers] == ["paths.py"]


# ---- the schema, at composition
@pytest.mark.parametrize("override, fragments", [
    ("seed=abc", ["seed='abc'", "expected an integer", "seed=42"]),
    ("threads=-1", ["threads=-1", "positive integer", "threads=2"]),
    ("threads=two", ["threads='two'", "an integer or null"]),
    ("compile=maybe", ["compile='maybe'", "true or false"]),
    ("monitor_mode=up", ["monitor_mode='up'", "min, max"]),
    ("checkpoint_every_n_steps=0", ["checkpoint_every_n_steps=0", "positive integer"]),
    ("data.batch_size=abc", ["data.batch_size='abc'", "an integer"]),
    ("optimizer.lr=-1", ["Invalid learning rate", "positive optimizer.lr"]),
    ("scheduler.warmup_ratio=2", ["warmup_ratio=2", "[0, 1)"]),
    ("trainer.precision=17", ["trainer.precision", "bf16-mixed"]),
])
def test_a_bad_value_is_found_at_composition(override, fragments):
    with pytest.raises(UserError) as err:
        composed(override)
    assert all(f in str(err.value) for f in fragments), str(err.value)


def test_a_good_config_comes_back_typed():
    cfg = composed("seed=7", "threads=1", "optimizer.lr=5e-5")
    assert cfg.seed == 7 and cfg.threads == 1 and isinstance(cfg.optimizer.lr, float)


# ---- through the CLI: exit 1, one message, no traceback, no folder
def no_folder_was_made(cwd: Path) -> bool:
    return not (cwd / "outputs").exists() and not any(cwd.rglob("results.json"))


@pytest.mark.parametrize("args, fragment", [
    (["seed=abc"], "seed='abc'"),
    (["threads=-1"], "threads=-1"),
    (["--cfg", "job", "data.batch_size=abc"], "data.batch_size='abc'"),
    (["-m", "seed=1,abc"], "sweep point 1 of 2"),
    (["-m", "peft=lora,full", "peft.r=0"], "sweep point 0 of 2"),
    (["experiment=methods/study002_glue_lora"], "study002_glue, study002_lora_rank"),
    (["experiment=common/study004"], "study004_gemma_lora"),
])
def test_the_cli_refuses_before_anything_runs(tmp_path, args, fragment):
    proc = run_cli(*args, "model=tiny_bert", cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-2000:]
    assert fragment in output and "fix:" in output, output[-2000:]
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 4, output
    assert no_folder_was_made(tmp_path)


def test_a_sweep_with_a_bad_point_starts_no_job(tmp_path):
    proc = run_cli("-m", *TINY, "seed=1,2,abc", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
                   env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 1 and "sweep point 2 of 3 (seed=abc" in proc.stderr
    assert not (tmp_path / "sweep").exists()


def test_cfg_job_prints_a_checked_config(tmp_path):
    proc = run_cli("--cfg", "job", "peft=full", cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "_target_: ftlab.peft.full.FullFineTuning" in proc.stdout and "lr: 5.0e-05" in proc.stdout
    assert no_folder_was_made(tmp_path)


def test_help_lists_every_subcommand_and_group_but_no_helper_folder():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for fragment in ("ftlab report", "ftlab estimate", "resume=<run dir>", "ftlab -m", "--cfg job",
                     "peft: bitfit", "experiment: study000_adapter", "model: bert"):
        assert fragment in proc.stdout, proc.stdout
    assert "experiment/common" not in proc.stdout and "methods" not in proc.stdout
