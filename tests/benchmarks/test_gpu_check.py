"""The GPU check (bench/gpu_check, `make gpu-check`) without a GPU: its dry run through the real command
(`python -m bench.gpu_check --dry-run`: tiny models, a handful of steps, every job of the GPU plan, the
CUDA-only paths refused or substituted), so that the script the rare GPU loan runs cannot rot; its
one-line refusal on a machine without CUDA; and the pieces with arithmetic of their own (the bundle's
slimmed bitsandbytes wheel, override swapping, the time budget). About 25-50 s, most of it one
process's imports and ten tiny runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ and tools/ are folders of the repository, not part of the package
    sys.path.insert(0, str(REPO))

from bench.gpu_check import plan  # noqa: E402

NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # CPU by construction, also on a machine with a GPU
CHECKS = [name for name, _, _ in plan.CHECKS]
REFUSED = ("fp16-mixed", "fsdp")  # ftlab refuses them on CPU before starting


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--dry-run", "--out", str(out), "--date", "test"],
                          cwd=REPO, env=NO_GPU, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads((out / "gpu-dry-run-test.json").read_text()), (out / "gpu-dry-run-test.md").read_text()


def test_dry_run_benchmarks_ftlab_against_the_hf_trainer(dry):
    res, _ = dry
    assert res["complete"] and not res["failed_jobs"] and res["meta"]["dry_run"]
    rows = res["bench"]["rows"]
    assert list(rows) == list(plan.CONTENDERS)
    for name, row in rows.items():
        assert row["n"] == res["settings"]["reps"], name
        for key in ("train_samples_per_s", "real_tokens_per_s", "padded_tokens_per_s", "step_ms", "train_tflops",
                    "mfu_measured_pct", "eval_samples_per_s", "peak_rss_gib"):
            assert row[key] > 0, (name, key)
        assert row["padded_tokens_per_s"] >= row["real_tokens_per_s"]
        assert row["mfu_measured_pct"] < 100 and 0 <= row["test_accuracy"] <= 1
        assert "mfu_spec_pct" not in row and "cuda_max_allocated_gib" not in row  # no GPU: no spec peak, no CUDA memory
    assert rows["ftlab-full-bf16"]["estimate_gib"] > 0  # results.json's estimate, next to the measured
    assert all(seen["ok"] for seen in res["bench"]["precision_seen"].values())  # bf16 autocast in both phases
    assert set(res["bench"]["ratios_ftlab_over_hf"]) >= {"train_samples_per_s", "real_tokens_per_s"}
    order = [r["contender"] for r in res["runs"]]
    assert order == list(plan.CONTENDERS) * res["settings"]["reps"]  # A B A B ...
    steps = res["settings"]["warmup"] + res["settings"]["steps"]
    assert all(len(r["child"]["step_ends"]) >= steps for r in res["runs"])


def test_flops_count_the_models_linear_weights(dry):
    res, _ = dry
    enc = res["models"]["encoder"]
    h, f, layers = (enc["config"][k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers"))
    assert enc["params"]["matmul"] == layers * (4 * h * h + 2 * h * f) + h * h + h * 3  # + RoBERTa's 2-layer head
    hf = next(r for r in res["runs"] if r["contender"] == "hf-grouped-bf16")
    assert hf["child"]["params"]["matmul"] == enc["params"]["matmul"]  # the saved model is what the Trainer trained
    peak = res["peak"]
    assert peak["tflops_best"] >= peak["tflops_median"] > 0 and peak["spec_tflops"] is None
    row = res["bench"]["rows"]["ftlab-full-bf16"]
    assert row["train_tflops"] == pytest.approx(6 * enc["params"]["matmul"] * row["real_tokens_per_s"] / 1e12)


def test_every_cuda_path_has_a_row(dry):
    res, _ = dry
    checks = {c["name"]: c for c in res["checks"]}
    assert list(checks) == CHECKS
    for name, c in checks.items():
        assert c["status"] == "pass", (name, c.get("error_tail"))
        assert c["seconds"] > 0 and c["command"].startswith("python -m ftlab ")
        if name in REFUSED:
            assert "needs a CUDA GPU" in c["refused"] and "evidence" not in c
            continue
        ev = c["evidence"]
        assert ev["status"] == "completed" and ev["device"] == "cpu" and ev["estimate_gib"] > 0, name
        assert 0 <= ev["test_accuracy"] <= 1
    assert checks["qlora"]["evidence"]["weights_4bit"] is True
    assert checks["qlora"]["evidence"]["gradient_checkpointing"] is True
    assert checks["gradient-checkpointing"]["evidence"]["gradient_checkpointing"] is True
    assert checks["fp16-mixed"]["command"].endswith("trainer.precision=16-mixed")
    assert {n for n, c in checks.items() if c["cpu_standin"]} == set(plan.CPU_STANDIN)  # each substitution said
    assert res["estimate"]["total_bytes"] > 0 and res["estimate"]["batch_size"] == res["settings"]["batch_size"]


def test_markdown_holds_both_tables(dry):
    _, md = dry
    assert "DRY RUN on CPU" in md
    assert "| contender | autocast (train/eval) | train samples/s | real tokens/s" in md
    for name in plan.CONTENDERS:
        assert f"| {name} | bfloat16/bfloat16 |" in md
    assert "MFU % (spec peak)" in md and "peak CUDA alloc (GiB)" in md and "ftlab estimate (GiB)" in md
    for name in CHECKS:
        assert f"| {name} | " in md and f"| {name} | " in md.split("## CUDA-only paths")[1]
    assert md.count("| PASS |") == len(CHECKS)


def test_without_cuda_it_refuses_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--out", str(tmp_path)], cwd=REPO, env=NO_GPU,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no CUDA GPU here") and "--dry-run" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert not list(tmp_path.iterdir())


# ---- the pieces ------------------------------------------------------------------------------------
def test_swap_keeps_one_value_per_key():
    args = plan.swap(["model=minilm", "peft=full", "+callbacks.x._target_=a"], {"model": "roberta",
                     "+callbacks.x._target_": "b", "model.pretrained": "/m"})
    assert args == ["peft=full", "model=roberta", "+callbacks.x._target_=b", "model.pretrained=/m"]


def test_no_job_starts_after_the_budget_or_a_failed_prepare():
    from bench.gpu_check.jobs import why_not

    ok = {"prepare": {"status": "ok"}}
    assert why_not({"kind": "ftlab"}, ok, 10, 20) is None
    assert "time budget" in why_not({"kind": "ftlab"}, ok, 30, 20)
    assert "prepare" in why_not({"kind": "hf"}, {"prepare": {"status": "failed"}}, 10, 20)
    assert why_not({"kind": "skip", "reason": "no bitsandbytes"}, ok, 0, 20) == "no bitsandbytes"


def test_bundle_keeps_one_cuda_library_of_bitsandbytes(tmp_path):
    from tools.gpu_bundle import slim_bitsandbytes

    libs = [f"bitsandbytes/libbitsandbytes_{x}.so" for x in ("cpu", "cuda126", "cuda130", "cuda132", "rocm64", "xpu2026")]
    names = ["bitsandbytes/__init__.py", *libs]
    wheel = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name in names:
            z.writestr(name, b"x")
        z.writestr("bitsandbytes-0.50.2.dist-info/RECORD", "".join(f"{n},sha256=h,1\n" for n in names)
                   + "bitsandbytes-0.50.2.dist-info/RECORD,,\n")
    slim_bitsandbytes(tmp_path, ("130",))
    with zipfile.ZipFile(wheel) as z:
        kept = set(z.namelist())
        record = z.read("bitsandbytes-0.50.2.dist-info/RECORD").decode()
    expected = {"bitsandbytes/__init__.py", "bitsandbytes/libbitsandbytes_cpu.so", "bitsandbytes/libbitsandbytes_cuda130.so"}
    assert kept - {"bitsandbytes-0.50.2.dist-info/RECORD"} == expected
    assert {line.split(",")[0] for line in record.splitlines()} == expected | {"bitsandbytes-0.50.2.dist-info/RECORD"}


def test_bundle_versions_are_the_projects_pins():
    from tools.gpu_bundle import PACKAGES, PINNED_STACK, pins

    versions = pins(PACKAGES + PINNED_STACK)
    pyproject = (REPO / "pyproject.toml").read_text()
    for name in ("hydra-core", "omegaconf", "datasets", "bitsandbytes", "transformers", "peft"):
        assert f'"{name}=={versions[name]}"' in pyproject, name
    assert all(versions.values())
