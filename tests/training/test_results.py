"""results.json has one owner (ftlab/results.py): what it writes for a completed and a failed run,
what `load` says of every folder a reader meets, and the failed jobs of a sweep."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from ftlab import results
from ftlab.errors import UserError


def test_a_failed_run_records_its_error_and_its_unresolved_config(tmp_path):
    cfg = OmegaConf.create({"seed": 3, "peft": {"r": 0}, "paths": {"output_dir": "${oc.env:NOWHERE}"}})
    error = UserError("peft.r=0 must be positive", "use peft.r=4")
    results.failed(tmp_path, cfg, error, True, {"peft": "lora"}, ["peft.r=0"])
    written = json.loads((tmp_path / results.RESULTS_FILE).read_text())
    assert written == {
        "status": "failed", "run_dir": str(tmp_path), "seed": 3, "choices": {"peft": "lora"}, "overrides": ["peft.r=0"],
        "error": {"type": "UserError", "message": str(error), "user_error": True},
        "config": {"seed": 3, "peft": {"r": 0}, "paths": {"output_dir": "${oc.env:NOWHERE}"}},
    }
    record = results.load(tmp_path)
    assert record.status == results.FAILED and record.run_dir == tmp_path
    assert record.reason == f"UserError: {error}"


def test_a_completed_run_leads_with_its_status_and_folder(tmp_path):
    written = results.completed(tmp_path, {"status": "failed", "test": {"test/accuracy": float("nan")}, "seed": 1})
    on_disk = json.loads((tmp_path / results.RESULTS_FILE).read_text())
    assert list(on_disk)[:2] == ["status", "run_dir"] and on_disk["status"] == "completed"
    assert on_disk["test"] == {"test/accuracy": None} and written["seed"] == 1  # JSON has no NaN
    assert results.load(tmp_path / results.RESULTS_FILE).data == on_disk  # a folder or the file itself


def test_load_says_what_there_is_to_read(tmp_path):
    def record(name: str, text: str | None):
        (tmp_path / name).mkdir()
        if text is not None:
            (tmp_path / name / results.RESULTS_FILE).write_text(text)
        return results.load(tmp_path / name)

    missing = record("killed", None)
    assert missing.status == results.MISSING and "still running, or killed" in missing.problem and not missing.data
    assert record("torn", '{"status": "comp').status == results.UNREADABLE
    assert record("a list", "[1, 2]").problem.endswith("not a JSON object")
    no_status = record("no status", '{"seed": 1}')
    assert no_status.status == results.UNREADABLE and no_status.data == {"seed": 1} and "no status" in no_status.problem
    assert record("old", '{"test": {"test/accuracy": 0.5}}').status == results.COMPLETED  # before `status` existed
    assert record("newer", '{"status": "interrupted"}').status == "interrupted"  # a newer ftlab's, passed on


def test_failed_runs_of_a_sweep_are_listed_by_absolute_folder(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    cfg = OmegaConf.create({"seed": 1})
    results.failed(sweep / "2_b", cfg, ValueError("boom"), False, {}, [])
    results.failed(sweep / "0_a", cfg, UserError("bad", "fix it"), True, {}, [])
    results.completed(sweep / "1_ok", {"test": {}})
    (sweep / "3_torn").mkdir()
    (sweep / "3_torn" / results.RESULTS_FILE).write_text("{")
    monkeypatch.chdir(tmp_path)
    failed = results.failed_runs("sweep/../sweep")  # as Hydra names a job's folder: absolute, normalised
    assert [(r.run_dir, r.reason) for r in failed] == [(sweep / "0_a", "UserError: bad\n  fix: fix it"),
                                                       (sweep / "2_b", "ValueError: boom")]
    assert results.failed_runs(tmp_path / "nothing here") == []
