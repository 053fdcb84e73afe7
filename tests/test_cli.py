"""The real entry point in a subprocess: a tiny run end to end, and every user mistake of the core
issue gives a short message with the fix, exit != 0, no traceback, and nothing earlier changed."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA_DIR, TINY, run_cli


def test_tiny_run_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*TINY, "dataset=acl_sup", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["choices"]["model"] == "tiny_bert" and results["choices"]["dataset"] == "acl_sup"
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run_dir / "checkpoints").glob("best-epoch*.ckpt"))
    assert "macro_f1" in proc.stdout and "results:" in proc.stdout


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "ftlab"
    assert script.is_file()
    proc = subprocess.run([str(script), "--cfg", "job"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "_target_: ftlab.models.backbone.Backbone" in proc.stdout


def broken_data_dir(tmp_path: Path, line_no: int, replacement: str) -> Path:
    """A copy of acl_sup whose train.jsonl has line `line_no` replaced."""
    root = tmp_path / "data"
    shutil.copytree(DATA_DIR / "acl_sup", root / "acl_sup")
    train = root / "acl_sup" / "train.jsonl"
    lines = train.read_text().split("\n")
    lines[line_no - 1] = replacement
    train.write_text("\n".join(lines))
    return root


BAD_INPUTS = {
    "unknown model": (["model=robrta"], ["model/robrta", "minilm", "tiny_bert"]),
    "unknown dataset subset": (["dataset=glue", "dataset.subset=sst3"], ["dataset.subset", "sst2", "stsb"]),
    "wrong type": (["trainer.max_epochs=abc"], ["trainer.max_epochs", "integer"]),
    "unknown setting": (["+peft.rank=4"], ["peft.rank", "valid settings", "alpha"]),
    "out of range": (["peft.r=0"], ["peft.r=0", "positive"]),
    "bad monitor": (["monitor=val/acc"], ["monitor", "val/accuracy", "val/macro_f1"]),
    "bad batch size": (["data.batch_size=0"], ["data.batch_size", "positive"]),
    "invalid choice of a library setting": (["trainer.precision=17"], ["trainer.precision", "bf16-mixed", "32-true"]),
    "fp16 on CPU": (["trainer.precision=16-mixed"], ["needs a CUDA GPU", "bf16-mixed"]),
    "GPU on CPU": (["trainer.accelerator=gpu"], ["needs a CUDA GPU", "trainer.accelerator=cpu"]),
    "library refuses a setting": (["trainer.strategy=nonsense"], ["trainer", "nonsense"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_overrides(tmp_path, case):
    overrides, expected = BAD_INPUTS[case]
    proc = run_cli(*TINY, "dataset=acl_sup", *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert_user_error(proc, expected)


def test_missing_data_names_the_expected_file(tmp_path):
    proc = run_cli(*TINY, "dataset=acl_sup", f"paths.data_dir={tmp_path}/nowhere", f"hydra.run.dir={tmp_path / 'run'}")
    assert_user_error(proc, [f"{tmp_path}/nowhere/acl_sup/train.jsonl", "JSON", "FTLAB_DATA_DIR"])


def test_malformed_row_names_file_and_line(tmp_path):
    data = broken_data_dir(tmp_path, 7, '{"text": "cut off')
    proc = run_cli(*TINY, "dataset=acl_sup", f"paths.data_dir={data}", f"hydra.run.dir={tmp_path / 'run'}")
    assert_user_error(proc, ["train.jsonl", "line 7"])


def test_unknown_label_lists_known_labels(tmp_path):
    data = broken_data_dir(tmp_path, 3, json.dumps({"text": "We use X.", "label": "Inspiration", "metadata": {}}))
    proc = run_cli(*TINY, "dataset=acl_sup", f"paths.data_dir={data}", f"hydra.run.dir={tmp_path / 'run'}")
    assert_user_error(proc, ["'Inspiration'", "line 3", "Background", "CompareOrContrast"])


def test_failed_run_leaves_earlier_outputs_untouched(tmp_path):
    earlier = tmp_path / "outputs" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "results.json").write_text('{"status": "completed"}')
    before = (earlier / "results.json").stat().st_mtime_ns
    proc = run_cli(*TINY, "peft.r=0", cwd=tmp_path, env={"PYTHONPATH": str(Path(__file__).parents[1])})
    assert proc.returncode != 0
    assert (earlier / "results.json").read_text() == '{"status": "completed"}'
    assert (earlier / "results.json").stat().st_mtime_ns == before
    failed = list((tmp_path / "outputs" / "runs").glob("*/*/results.json"))
    assert len(failed) == 1 and json.loads(failed[0].read_text())["status"] == "failed"


def assert_user_error(proc, expected: list[str]) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    for fragment in expected:
        assert fragment in output, f"{fragment!r} missing from:\n{output[-2000:]}"


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    """The run folder carries microseconds: two jobs started together never share or overwrite one."""
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    args = [sys.executable, "-m", "ftlab", *TINY, "dataset=acl_sup", "save.model=false"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    results = sorted((tmp_path / "outputs" / "runs").glob("*/*/results.json"))
    assert len(results) == 2 and results[0].parent != results[1].parent
    assert all(json.loads(r.read_text())["status"] == "completed" for r in results)
