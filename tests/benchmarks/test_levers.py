"""`python -m bench.levers` in its smallest form: one on/off pair of the bulk-dropout lever, a few
steps of MiniLM each (two processes, about 30 s); the JSON says the lever was on in one run and off in
the other, over the same batches, and the ratios come from their step logs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def test_one_lever_on_and_off_over_the_same_batches(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.levers", "--reps", "1", "--warmup", "1", "--steps", "3",
                           "--threads", "1", "--levers", "bulk_dropout", "--precisions", "32-true", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    record = json.loads(next(tmp_path.glob("levers-*.json")).read_text())
    (row,) = record["rows"]
    assert (row["lever"], row["precision"]) == ("bulk_dropout", "32-true")
    (pair,) = row["reps"]
    assert any("dropout modules draw their masks in bulk" in line for line in pair["cpu_log_on"])
    assert not any("in bulk" in line for line in pair["cpu_log_off"])
    assert pair["ms_per_step_on"] > 0 and pair["ms_per_step_off"] > 0
    assert math.isfinite(row["step_median"]) and row["step_median"] > 0 and row["total"] > 0
    assert "| bulk_dropout | 32-true |" in next(tmp_path.glob("levers-*.md")).read_text()


def test_the_ratios_refuse_different_batches():
    from bench.levers import compare

    log = {"step_ends": [1.0, 2.0, 4.0], "batches": [[32, 500, 640]] * 3, "cpu_log": []}
    faster = {**log, "step_ends": [0.5, 1.0, 2.0]}
    assert compare(faster, log, warmup=1) | {"cpu_log_on": [], "cpu_log_off": []} == {
        "step_median": 0.5, "total": 0.5, "ms_per_step_on": 750.0, "ms_per_step_off": 1500.0,
        "cpu_log_on": [], "cpu_log_off": []}
    with pytest.raises(AssertionError, match="different batches"):
        compare({**faster, "batches": [[32, 400, 640]] * 3}, log, warmup=1)
