"""The loss levers for imbalanced data (`loss.*`, ftlab/models/loss.py) against hand-computed numbers,
their refusals (at composition where the dataset knows its labels, else at data setup), and early
stopping (`callbacks=early_stopping`) stopping a run whose monitored metric cannot improve."""

from __future__ import annotations

import json
import math

import pytest
import torch

from support.cli import REPO, TINY, run_cli
from ftlab.data.task import classification, multi_label, regression
from ftlab.errors import UserError
from ftlab.models.loss import TaskLoss, balanced_class_weights, balanced_pos_weight, check_loss, task_loss

LN2 = math.log(2.0)
THREE = classification(["negative", "neutral", "positive"])
# logits whose softmax is [0.5, 0.25, 0.25] and [0.25, 0.25, 0.5]: every log-probability is -ln 2 or -ln 4
LOGITS = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]]))
LABELS = torch.tensor([0, 1])  # their probabilities: 0.5 (-log: ln 2) and 0.25 (-log: 2 ln 2)


def test_class_weights_weigh_each_example_by_its_class():
    plain = TaskLoss(THREE)(LOGITS, LABELS)
    weighted = TaskLoss(THREE, class_weights=[1.0, 2.0, 1.5])(LOGITS, LABELS)
    assert plain.item() == pytest.approx((LN2 + 2 * LN2) / 2)  # the mean of ln 2 and ln 4
    # sum of weight * nll over the sum of the weights of the examples' classes: (1 ln2 + 2 * 2 ln2) / (1 + 2)
    assert weighted.item() == pytest.approx((1.0 * LN2 + 2.0 * 2 * LN2) / (1.0 + 2.0))


def test_balanced_weights_from_counts():
    # n / (n_classes * count): 100 / (3 * 10), 100 / (3 * 30), 100 / (3 * 60)
    assert balanced_class_weights([10, 30, 60]) == pytest.approx([10 / 3, 10 / 9, 5 / 9])
    with pytest.raises(UserError, match="no training example of neutral"):
        balanced_class_weights([10, 0, 60], THREE.label_names)


def test_label_smoothing_on_one_example():
    p = 0.1
    loss = TaskLoss(THREE, label_smoothing=p)(LOGITS[:1], LABELS[:1])
    # target (1 - p) * one-hot + p / 3: 0.9333 on the true class (log-prob -ln 2), 0.0333 on each other (-ln 4)
    true, other = 1 - p + p / 3, p / 3
    assert loss.item() == pytest.approx(true * LN2 + 2 * other * 2 * LN2)


def test_pos_weight_weighs_the_positive_terms_of_bce():
    task = multi_label(["joy", "anger"])
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])  # sigmoids 0.5, 0.5; 0.5, 0.75
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    loss = TaskLoss(task, pos_weight=[3.0, 0.5])(logits, labels)
    # positive term: -pw * log(sigmoid); negative term: -log(1 - sigmoid); the mean of the 4 terms
    terms = [3.0 * LN2, LN2, 3.0 * LN2, 0.5 * -math.log(0.75)]
    assert loss.item() == pytest.approx(sum(terms) / 4)
    # balanced: n_neg / n_pos per label; a label never positive keeps 1.0
    assert balanced_pos_weight([1, 3, 0], 4) == pytest.approx([3.0, 1 / 3, 1.0])


def test_settings_refused_where_they_do_not_apply():
    three = r"has 2 weights but restaurant_sup has 3 labels \(negative, neutral, positive\)"
    with pytest.raises(UserError, match=three):
        check_loss({"class_weights": [1.0, 2.0]}, THREE, "restaurant_sup")
    for bad in ([1.0, 0.0, 2.0], [1.0, -1.0, 2.0], "even"):
        with pytest.raises(UserError, match="loss.class_weights"):
            check_loss({"class_weights": bad}, None, "restaurant_sup")
    for p in (1.0, -0.1):
        with pytest.raises(UserError, match=r"label_smoothing=.* is out of range: expected a number in \[0, 1\)"):
            check_loss({"label_smoothing": p}, None, "restaurant_sup")
    with pytest.raises(UserError, match="loss.pos_weight applies to multi-label tasks"):
        check_loss({"pos_weight": "balanced"}, THREE, "restaurant_sup")
    with pytest.raises(UserError, match="loss.class_weights applies to single-label"):
        check_loss({"class_weights": "balanced"}, multi_label(["joy", "anger"]), "goemotions")
    with pytest.raises(UserError, match="does not apply to glue_stsb: a regression task"):
        check_loss({"label_smoothing": 0.1}, regression(), "glue_stsb")
    check_loss({"pos_weight": [1.0, 2.0]}, multi_label(["joy", "anger"]), "goemotions")  # fits: no error


def test_balanced_reads_the_training_counts_only_when_asked():
    asked = []
    counts = lambda: asked.append(1) or ([10, 30, 60], 100)  # noqa: E731
    assert task_loss({"class_weights": [1, 2, 3]}, THREE, "x", counts).to_dict()["class_weights"] == [1, 2, 3]
    assert not asked
    assert task_loss({"class_weights": "balanced"}, THREE, "x", counts).to_dict()["class_weights"] == \
        pytest.approx([10 / 3, 10 / 9, 5 / 9], abs=1e-6)


# ---- through the runs
def local_data(tmp_path, counts=(1, 3, 6)):
    """A train file with `counts` examples of awful, fine, great; validation and test of one each."""
    words = ["awful", "fine", "great"]
    rows = [f"this is {w} number {i},{w}" for w, n in zip(words, counts) for i in range(n)]
    (tmp_path / "train.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "eval.csv").write_text("text,label\n" + "\n".join(f"{w} again,{w}" for w in words) + "\n")
    return ["dataset=local", f"dataset.train={tmp_path / 'train.csv'}", f"dataset.validation={tmp_path / 'eval.csv'}",
            f"dataset.test={tmp_path / 'eval.csv'}", "logger=none", "save.model=false"]


def test_balanced_weights_come_from_the_training_split(compose, tmp_path):
    from ftlab.run import run

    results = run(compose(*local_data(tmp_path), "loss.class_weights=balanced", "loss.label_smoothing=0.1"))
    assert results["status"] == "completed"
    # 10 training examples, 3 classes, counts 1, 3, 6: 10 / 3, 10 / 9, 10 / 18
    assert results["loss"]["class_weights"] == pytest.approx([10 / 3, 10 / 9, 10 / 18], abs=1e-5)
    assert results["loss"]["label_smoothing"] == 0.1 and results["early_stopping"] is None


def test_balanced_pos_weight_from_multi_label_training_data(compose, tmp_path):
    from ftlab.run import run

    rows = [("a", ["joy", "anger"]), ("b", []), ("c", ["fear"]), ("d", ["anger"])]  # anger 2, fear 1, joy 1 of 4
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    results = run(compose("dataset=local", f"dataset.train={train}", f"dataset.validation={train}",
                          f"dataset.test={train}", "dataset.task_type=multi_label", "loss.pos_weight=balanced",
                          "logger=none", "save.model=false"))
    assert results["task"]["label_names"] == ["anger", "fear", "joy"]
    assert results["loss"]["pos_weight"] == pytest.approx([2 / 2, 3 / 1, 3 / 1])  # n_neg / n_pos


def test_a_local_dataset_is_refused_at_data_setup_before_training(compose, tmp_path):
    from ftlab.run import run

    cfg = compose(*local_data(tmp_path), "loss.class_weights=[1.0,2.0]")
    with pytest.raises(UserError, match=r"has 2 weights but local has 3 labels \(awful, fine, great\)"):
        run(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_cli_refuses_wrong_length_weights_before_any_folder(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*TINY, "loss.class_weights=[1.0,2.0]", f"hydra.run.dir={run_dir}", cwd=tmp_path,
                   env={"PYTHONPATH": str(REPO)})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-2000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == ["error: loss.class_weights has 2 weights but restaurant_sup has 3 labels "
                      "(negative, neutral, positive)"], output
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 2, output
    assert not run_dir.exists() and not any(tmp_path.rglob("results.json"))


def test_early_stopping_stops_a_run_that_cannot_improve(tmp_path):
    run_dir = tmp_path / "run"
    # lr 0: the weights never change, so the monitored val/macro_f1 is the same every epoch
    proc = run_cli(*TINY, "callbacks=early_stopping", "callbacks.early_stopping.patience=1", "trainer.max_epochs=6",
                   "optimizer.lr=0.0", "logger=none", "save.model=false", f"hydra.run.dir={run_dir}", cwd=tmp_path,
                   env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    epochs = sorted({row["epoch"] for row in results["history"]})
    assert epochs == [0, 1]  # the first sets the best, the second does not improve: patience 1 is spent
    stop = results["early_stopping"]
    assert stop["stopped"] is True and stop["stopped_epoch"] == 1 and stop["epochs_run"] == 2 and stop["patience"] == 1
    assert stop["monitor"] == results["monitor"]["metric"] == "val/macro_f1"  # the checkpoint's metric, resolved


def test_early_stopping_watches_what_picks_the_checkpoint(compose):
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from ftlab.config import checked
    from ftlab.run import assemble

    def watched(*overrides):
        trainer = assemble(checked(compose("callbacks=early_stopping", "logger=none", *overrides)), None).trainer
        return [(c.monitor, c.mode) for kind in (EarlyStopping, ModelCheckpoint)
                for c in trainer.callbacks if isinstance(c, kind)]

    assert watched() == [("val/macro_f1", "max")] * 2  # null in the config: the dataset's choice, for both
    assert watched("monitor=val/loss") == [("val/loss", "min")] * 2  # its mode follows the metric
    with pytest.raises(UserError, match=r"early stopping watches val/loss \(min\) but the best checkpoint is "
                                        r"picked by monitor=val/macro_f1"):
        watched("callbacks.early_stopping.monitor=val/loss", "callbacks.early_stopping.mode=min")
