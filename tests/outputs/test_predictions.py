"""Every run writes its predictions per example (ftlab/predictions.py): a tiny run's files reproduce
results.json's test (and best validation) accuracy and confusion matrix exactly, recomputed from the
file, and their texts are the dataset's own at each index."""

from __future__ import annotations

import json

import pytest

from support.cli import DATA_DIR, TINY, run_cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("predictions") / "run"
    proc = run_cli(*TINY, "dataset=acl_sup", "logger=none", "peft=lora", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def confusion(rows: list[dict], n: int) -> list[list[int]]:
    matrix = [[0] * n for _ in range(n)]
    for row in rows:
        matrix[row["label"]][row["pred"]] += 1
    return matrix


@pytest.mark.parametrize("split", ["test", "validation"])
def test_predictions_reproduce_the_results(run_dir, split):
    from ftlab import predictions

    results = json.loads((run_dir / "results.json").read_text())
    rows = predictions.load(run_dir, split)
    n = results["task"]["num_labels"]
    metrics = results["test"] if split == "test" else results["val"]
    prefix = "test" if split == "test" else "val"
    assert len(rows) == sum(map(sum, results[f"{prefix}_confusion_matrix"])) > 0
    assert confusion(rows, n) == results[f"{prefix}_confusion_matrix"]
    accuracy = sum(r["label"] == r["pred"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(metrics[f"{prefix}/accuracy"], abs=1e-6)
    indexes = [r["index"] for r in rows]
    assert indexes == sorted(set(indexes))  # dataset order, each example once
    for row in rows:
        assert len(row["probs"]) == n and abs(sum(row["probs"]) - 1) < 1e-4
        assert max(range(n), key=lambda i: row["probs"][i]) == row["pred"] or \
            row["probs"][row["pred"]] == pytest.approx(max(row["probs"]), abs=1e-6)


def test_predictions_carry_the_texts(run_dir):
    from ftlab import predictions
    from ftlab.data.sources.acl import AclArcSource

    test = AclArcSource(str(DATA_DIR)).load().splits["test"]
    rows = predictions.load(run_dir, "test")
    assert all(r["text"] == test[r["index"]]["text"] and r["label"] == test[r["index"]]["label"] for r in rows)
    assert not list((run_dir / "predictions").glob(".*"))  # no temp file left
