"""Hyper-parameter search through the real CLI and the real Optuna sweeper plugin (hydra/sweeper=optuna,
hparams_search presets): the study in the sweep folder, a failed trial, a killed search continued,
the report of a search folder, and the mistakes refused before any trial runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from support.cli import REPO, TINY, run_cli

optuna = pytest.importorskip("optuna")

SPACE = ["optimizer.lr=tag(log, interval(1e-5, 1e-2))", "peft.r=choice(4, 8)"]


def search(sweep_dir: Path, *extra: str) -> list[str]:
    return ["-m", "hydra/sweeper=optuna", *TINY, *SPACE, "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep_dir}",
            *extra]


def trials(sweep_dir: Path):
    study = optuna.load_study(study_name="ftlab", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    return study.get_trials()


def test_a_search_writes_its_study_and_each_trial_reports_its_best_validation_monitor(tmp_path):
    sweep = tmp_path / "search"
    proc = run_cli(*search(sweep))
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = trials(sweep)
    assert [t.state.name for t in done] == ["COMPLETE"] * 3
    for t in done:
        (run_dir,) = sweep.glob(f"{t.number}_*")  # trial n ran in job folder n
        results = json.loads((run_dir / "results.json").read_text())
        assert results["monitor"]["metric"] == "val/macro_f1"
        assert t.value == pytest.approx(results["val"]["val/macro_f1"])  # never a test metric
        assert f"optimizer.lr={t.params['optimizer.lr']}" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(t.value for t in done) and best["direction"] == "maximize"

    report = run_cli("report", str(sweep))
    assert report.returncode == 0, report.stderr[-2000:]
    assert f"best trial {best['best_trial']}" in report.stdout
    text = (sweep / "report" / "report.md").read_text()
    assert "## Search `search`" in text and "optimizer.lr=tag(log, interval(1e-5, 1e-2))" in text
    assert f"| {best['best_trial']} **(best)** | complete |" in text
    figures = sweep / "report" / "search" / "search"
    for name in ("trials.png", "param_optimizer.lr.png", "param_peft.r.png", "trials.csv"):
        assert (figures / name).stat().st_size > 0, name


def test_a_failed_trial_is_told_to_the_study_and_the_search_goes_on(tmp_path):
    """A trial whose data folder does not exist fails at run time; the others still run and the
    command exits 0 naming the failed trial. (Seed 6 draws the missing folder for trial 2 only.)"""
    sweep = tmp_path / "search"
    real = os.environ["FTLAB_DATA_DIR"]
    proc = run_cli("-m", "hydra/sweeper=optuna", *TINY, f"dataset.data_dir=choice({real},{tmp_path / 'nowhere'})",
                   "hydra.sweeper.n_trials=4", "seed=6", f"hydra.sweep.dir={sweep}")
    states = [t.state.name for t in trials(sweep)]
    assert len(states) == 4 and "FAIL" in states and "COMPLETE" in states, (states, proc.stderr[-2000:])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{states.count('FAIL')} of 4 trials failed (the search went on)" in proc.stderr
    assert "data file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_a_search_whose_trials_all_fail_stops_and_exits_1_saying_why(tmp_path):
    sweep = tmp_path / "search"
    proc = run_cli("-m", "hydra/sweeper=optuna", *TINY, "optimizer.lr=interval(1e-4, 1e-3)",
                   f"dataset.data_dir={tmp_path / 'nowhere'}", "hydra.sweeper.n_trials=10", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1
    assert len(trials(sweep)) == 3  # GIVE_UP: the first three failed, none completed
    assert "the first 3 trials of this search failed" in proc.stdout + proc.stderr
    assert "data file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_a_killed_search_continues_with_only_the_missing_trials(tmp_path):
    sweep = tmp_path / "search"
    args = search(sweep, "trainer.limit_train_batches=20")
    proc = subprocess.Popen([sys.executable, "-m", "ftlab", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list(sweep.glob("1_*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # killed mid-trial 1: no handler runs, the study keeps it RUNNING
    proc.wait()
    before = {t.number: t for t in trials(sweep)}
    complete_before = [n for n, t in before.items() if t.state.name == "COMPLETE"]
    cut = [t for t in before.values() if t.state.name == "RUNNING"]
    assert len(cut) == 1, before
    first = sorted(sweep.glob("0_*"))[0] / "results.json"
    stamp = first.stat().st_mtime_ns

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = trials(sweep)
    ran_now = [t for t in after if t.number not in before]
    assert len(ran_now) == 3 - len(complete_before)  # only the missing trials
    assert ran_now[0].params == cut[0].params  # the cut trial first, with its parameters
    assert sum(t.state.name == "COMPLETE" for t in after) == 3
    assert after[cut[0].number].state.name == "FAIL" and after[cut[0].number].user_attrs["interrupted"]
    assert first.stat().st_mtime_ns == stamp  # nothing earlier overwritten
    for t in ran_now:
        assert len(list(sweep.glob(f"{t.number}_*"))) == 1

    again = run_cli(*args, "hydra.sweeper.n_trials=3")
    assert again.returncode == 0 and len(trials(sweep)) == len(after)  # complete: nothing more to run

    other = run_cli(*args, "trainer.max_epochs=2")
    assert other.returncode == 1 and "holds a search of other overrides" in other.stderr


@pytest.mark.parametrize("args, expected", [
    (["hparams_search=nope"], "use one of: adapter, full, lora, lr, prompt"),
    (["hparams_search=lora", "peft=houlsby"], "Could not override 'peft.r'"),
    (["hparams_search=lora", "peft.r=interval(0, 16)"], "search space at optimizer.lr=1e-05 peft.r=0"),
    (["hparams_search=lr", "optimizer.betas=interval(0.5, 1.5)"], "optimizer.betas"),
    (["hparams_search=lr", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0: a search needs at least one trial"),
    (["-m", "hydra/sweeper=optuna", "optimizer.lr=interval(1e-4, 1e-3)", "--cfg", "job"],
     "-m/--multirun and --cfg cannot be combined"),
])
def test_a_search_mistake_is_refused_before_any_trial_with_the_key_named(tmp_path, args, expected):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-1000:]
    assert expected in proc.stderr and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()


PRESET_METHODS = [("lr", "full"), ("lr", "bitfit"), ("lr", "head"), ("lr", "ia3"), ("lora", "lora"), ("lora", "dora"),
                  ("adapter", "houlsby"), ("adapter", "pfeiffer"), ("prompt", "prefix"), ("prompt", "prompt"),
                  ("full", "full")]


@pytest.mark.parametrize("preset, peft", PRESET_METHODS)
def test_every_search_preset_composes_with_its_methods_at_both_ends_of_its_ranges(preset, peft):
    """Each preset's space is checked as the search would run it: every choice and both ends of every range."""
    from ftlab.config.composition import sweep_points
    from ftlab.config.preflight import preflight

    preflight([f"hparams_search={preset}", f"peft={peft}"])
    points, sweeper = sweep_points([f"hparams_search={preset}", f"peft={peft}"])
    assert sweeper.endswith("OptunaSweeper") and len(points) >= 2
    assert any("optimizer.lr=" in o for o in points[0])
