"""`ftlab predict`, through the real CLI on tiny runs (one LoRA, one Houlsby adapter, trained once):
the labels (and probabilities) of the run's own predictions file for the same texts, from --text and
from an --input csv; each bad input a one-line error with its fix, exit 1, no output file left."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch

from support.cli import TINY, run_cli

RUN = [*TINY, "dataset=acl_sup", "logger=none"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("predict")


@pytest.fixture(scope="module")
def tiny_base(root):
    """A tiny BERT saved as a folder (a "pretrained" base load_classifier can find), weights drawn wide
    so that the examples do not all get the same class."""
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    config = AutoConfig.for_model("bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, initializer_range=0.3)
    AutoModel.from_config(config).save_pretrained(root / "tiny-base")
    return root / "tiny-base"


def train(run_dir, *overrides):
    proc = run_cli(*RUN, *overrides, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def runs(root, tiny_base):
    return {peft: train(root / peft, f"peft={peft}", f"model.pretrained={tiny_base}") for peft in ("lora", "houlsby")}


def predict(*args):
    return run_cli("predict", *map(str, args), "--threads", "1", timeout=120)


def labels_of(run_dir) -> list[str]:
    return json.loads((run_dir / "results.json").read_text())["task"]["label_names"]


def read_out(out) -> list[dict]:
    if out.suffix == ".csv":  # flat: label, label_id, prob_<name>
        return [{**g, "label_id": int(g["label_id"]), "probs": {k[5:]: float(v) for k, v in g.items() if k.startswith("prob_")}}
                for g in csv.DictReader(out.open(encoding="utf-8"))]
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("peft, out_name", [("lora", "out.csv"), ("houlsby", "out.jsonl")])
def test_input_csv_reproduces_the_predictions_file(runs, peft, out_name, tmp_path):
    from ftlab import predictions

    run_dir = runs[peft]
    expected = predictions.load(run_dir, "test")
    assert len({r["pred"] for r in expected}) > 1  # the texts do not all get one class
    source = tmp_path / "in.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "sentence"])
        writer.writerows([r["index"], r["text"]] for r in expected)
    out = tmp_path / out_name
    proc = predict(run_dir, "--input", source, "--text-column", "sentence", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = read_out(out)
    names = labels_of(run_dir)
    assert [g["text"] for g in got] == [r["text"] for r in expected]
    assert [g["label_id"] for g in got] == [r["pred"] for r in expected]
    assert [g["label"] for g in got] == [names[r["pred"]] for r in expected]
    for g, r in zip(got, expected):
        assert [g["probs"][n] for n in names] == pytest.approx(r["probs"], abs=1e-4)


@pytest.mark.parametrize("peft", ["lora", "houlsby"])
def test_text_on_stdout(runs, peft):
    from ftlab import predictions

    run_dir = runs[peft]
    row = predictions.load(run_dir, "test")[0]
    proc = predict(run_dir, "--text", row["text"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (got,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert got["label_id"] == row["pred"] and got["label"] == labels_of(run_dir)[row["pred"]]


def bad_cases(root, run_dir):
    """name -> (run dir, input file or None, what the error says)"""
    failed = root / "failed-run"
    if not failed.exists():
        shutil.copytree(run_dir, failed, ignore=shutil.ignore_patterns("checkpoints"))
        record = json.loads((failed / "results.json").read_text())
        record.update(status="failed", error={"type": "UserError", "message": "training diverged"})
        (failed / "results.json").write_text(json.dumps(record))
    no_model = root / "no-model-run"
    if not no_model.exists():
        shutil.copytree(run_dir, no_model, ignore=shutil.ignore_patterns("checkpoints", "model", "export"))
    files = root / "inputs"
    files.mkdir(exist_ok=True)
    (files / "columns.csv").write_text("sentence,label\nhello,1\n")
    (files / "empty.csv").write_text("text\n")
    (files / "latin1.csv").write_bytes("text\ncaf\xe9 au lait\n".encode("latin-1"))
    return {
        "not a run": (root / "inputs", None, "is not a run folder"),
        "failed run": (failed, None, "did not complete (failed: UserError: training diverged)"),
        "no model": (no_model, None, "has no model/"),
        "missing column": (run_dir, files / "columns.csv", "has no column 'text' (it has: label, sentence)"),
        "empty file": (run_dir, files / "empty.csv", "has no rows"),
        "not utf-8": (run_dir, files / "latin1.csv", "is not UTF-8 text (byte 0xe9 on line 2)"),
    }


CASES = ["not a run", "failed run", "no model", "missing column", "empty file", "not utf-8"]


def check_refused(code: int, stdout: str, stderr: str, says: str, out_dir) -> None:
    assert code == 1, stderr[-3000:]
    assert "Traceback" not in stderr and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and says in lines[0], stderr
    assert lines[1].strip().startswith("fix: ")
    assert list(out_dir.iterdir()) == []  # no output, no temp file


@pytest.mark.parametrize("case", CASES)
def test_bad_input(runs, root, tmp_path, case, capsys):
    """Each refused before any model loads: in this process (a CLI start is seconds of imports here)."""
    from ftlab.predict_command import predict_main

    run_dir, source, says = bad_cases(root, runs["lora"])[case]
    args = ["--input", str(source)] if source else ["--text", "hello"]
    code = predict_main([str(run_dir), *args, "--out", str(tmp_path / "out.jsonl")])
    captured = capsys.readouterr()
    check_refused(code, captured.out, captured.err, says, tmp_path)


@pytest.mark.parametrize("case", ["not utf-8", "no model"])
def test_bad_input_through_the_cli(runs, root, tmp_path, case):
    run_dir, source, says = bad_cases(root, runs["lora"])[case]
    args = ["--input", source] if source else ["--text", "hello"]
    proc = predict(run_dir, *args, "--out", tmp_path / "out.jsonl")
    check_refused(proc.returncode, proc.stdout, proc.stderr, says, tmp_path)
