"""A sweep survives a failing job: the job records its failure (config + error) in its own
results.json, the other jobs run, the command exits != 0 listing the failed job, and the report
shows it. The failure is one only the model can tell (a Houlsby bottleneck wider than tiny BERT's
hidden size): whatever the config alone decides is refused before the sweep starts
(tests/config/test_config.py)."""

from __future__ import annotations

import json

from support.cli import TINY, run_cli


def test_a_failing_job_does_not_stop_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *TINY, "dataset=acl_sup", "peft=houlsby", "peft.reduction_factor=64,4", f"hydra.sweep.dir={sweep}", timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    results = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}
    assert len(results) == 2, sorted(results)
    failed = next(r for name, r in results.items() if name.startswith("0_"))
    completed = next(r for name, r in results.items() if name.startswith("1_"))
    assert failed["status"] == "failed" and "reduction_factor" in failed["error"]["message"]
    assert "peft.reduction_factor=64" in failed["overrides"] and failed["config"]["peft"]["reduction_factor"] == 64
    assert completed["status"] == "completed" and completed["config"]["peft"]["reduction_factor"] == 4
    assert "failed" in output.lower() and "0_" in output  # the failed job is listed at the end

    report = run_cli("report", str(sweep), timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    text = (sweep / "report" / "report.md").read_text()
    assert "failed" in text.lower() and "reduction_factor" in text
