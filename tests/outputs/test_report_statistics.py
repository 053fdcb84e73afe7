"""`ftlab report`'s statistics (ftlab/report/significance.py) and error-analysis pages, on arrays and on
hand-written run folders (results.json + predictions/test.jsonl): Holm, the paired bootstrap over test
examples, the BCa CIs of the means, which tests are shown, and the pages per group."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats
from torchmetrics.classification import MulticlassF1Score

from ftlab.report import significance
from ftlab.report.collect import collect
from ftlab.report.command import report_main
from ftlab.report.document import WILCOXON_NOTE, paired_section, statistics_paragraph
from ftlab.report.error_analysis import group_page, md_text, wrong_everywhere
from ftlab.report.significance import Bootstrap, holm, mean_ci, paired_bootstrap
from ftlab.report.stats import PairedTest, adjust, paired_test
from ftlab.report.tables import Cell, Table, build_table, fmt_p, format_cell, p_equals, to_csv


# ---------------------------------------------------------------- Holm

def test_holm_hand_computed_and_monotone():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.6]) == [1.0, None, 1.0]  # capped at 1, None kept
    assert holm([]) == [] and holm([0.02]) == [0.02]
    raw = list(np.random.default_rng(3).uniform(0, 0.2, 12))
    adjusted = holm(raw)
    pairs = sorted(zip(raw, adjusted))
    assert all(a <= b for (_, a), (_, b) in zip(pairs, pairs[1:]))  # the order of the raw p's kept
    assert all(p <= q <= 1 for p, q in zip(raw, adjusted))


# ---------------------------------------------------------------- the paired bootstrap on arrays

def by_hand(labels, preds) -> tuple[float, float]:
    """Accuracy, and macro-F1 as torchmetrics' average="macro" (classes with TP + FP + FN > 0), float64."""
    labels, preds = list(labels), list(preds)
    acc = sum(a == b for a, b in zip(labels, preds)) / len(labels)
    f1 = [2 * sum(a == b == c for a, b in zip(labels, preds)) / (labels.count(c) + preds.count(c))
          for c in set(labels) | set(preds)]
    return acc, sum(f1) / len(f1)


def noisy(rng, labels, right: float, k: int):
    return np.where(rng.random(labels.shape) < right, labels, rng.integers(0, k, labels.shape))


def test_identical_methods_give_p_1_and_delta_0():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    runs = np.stack([noisy(rng, y, 0.6, 3) for _ in range(3)])
    for result in paired_bootstrap(y, runs, runs, 3, n_resamples=500).values():
        assert result.delta == 0 and result.p == 1 and result.ci_low == result.ci_high == 0


def test_a_method_right_where_the_baseline_is_wrong_reaches_the_smallest_p():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 3000)
    base = np.stack([noisy(rng, y, 0.5, 2) for _ in range(2)])
    result = paired_bootstrap(y, np.stack([y, y]), base, 2, n_resamples=2000)
    for r in result.values():
        assert r.p == 1 / 2001 and r.ci_low > 0 and r.delta > 0.2


def test_delta_is_the_difference_of_the_metrics_computed_independently():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, 150)  # class 4 of 6 only predicted, class 5 never seen: torchmetrics skips it
    mine = np.stack([noisy(rng, y, 0.7, 5) for _ in range(3)])
    theirs = np.stack([noisy(rng, y, 0.5, 4) for _ in range(3)])
    result = paired_bootstrap(y, mine, theirs, 6, n_resamples=200)
    hand = [np.mean([by_hand(y, a)[m] - by_hand(y, b)[m] for a, b in zip(mine, theirs)]) for m in (0, 1)]
    assert result["accuracy"].delta == pytest.approx(hand[0], abs=1e-12)
    assert result["macro_f1"].delta == pytest.approx(hand[1], abs=1e-12)
    tm = MulticlassF1Score(6, average="macro")
    f1 = [tm(torch.tensor(a), torch.tensor(y)).item() - tm(torch.tensor(b), torch.tensor(y)).item() for a, b in zip(mine, theirs)]
    assert result["macro_f1"].delta == pytest.approx(np.mean(f1), abs=1e-6)  # torchmetrics: float32


def test_bootstrap_equals_a_plain_loop_over_resampled_indices(monkeypatch):
    """The counts-matrix shortcut against resampling the examples themselves, with the same draws."""
    rng = np.random.default_rng(5)
    n, b = 80, 300
    y = rng.integers(0, 3, n)
    mine, theirs = np.stack([noisy(rng, y, 0.7, 3) for _ in range(2)]), np.stack([noisy(rng, y, 0.6, 3) for _ in range(2)])
    fast = paired_bootstrap(y, mine, theirs, 3, n_resamples=b)
    draws = np.random.default_rng(significance.SEED).integers(0, n, size=(b, n), dtype=np.int32)  # one chunk
    for m, which in (("accuracy", 0), ("macro_f1", 1)):
        delta = np.mean([by_hand(y, p)[which] - by_hand(y, q)[which] for p, q in zip(mine, theirs)])
        star = np.array([np.mean([by_hand(y[i], p[i])[which] - by_hand(y[i], q[i])[which] for p, q in zip(mine, theirs)])
                         for i in draws])
        p = (1 + np.sum(np.abs(star - delta) >= abs(delta) - 1e-12)) / (b + 1)
        assert fast[m].p == pytest.approx(p, abs=1e-12)
        assert (fast[m].ci_low, fast[m].ci_high) == pytest.approx(tuple(np.percentile(star, [2.5, 97.5])), abs=1e-12)
    # the same numbers however it is chunked, and with the sparse indicator columns
    monkeypatch.setattr(significance, "CELLS_PER_CHUNK", 7 * n)
    monkeypatch.setattr(significance, "DENSE_BYTES", 0)
    again = paired_bootstrap(y, mine, theirs, 3, n_resamples=b)
    assert all(again[m].p == fast[m].p and again[m].ci_low == fast[m].ci_low for m in fast)


# ---------------------------------------------------------------- the bootstrap on run folders

def write_run(root: Path, name: str, peft: str, seed: int, labels, preds, names=("neg", "pos", "mid"),
              indices=None, with_predictions=True) -> Path:
    """A completed run whose results.json test metrics are computed from its predictions (float64)."""
    run = root / name
    (run / "predictions").mkdir(parents=True)
    acc, macro = by_hand(labels, preds)
    k = len(names)
    confusion = [[sum(1 for a, b in zip(labels, preds) if (a, b) == (i, j)) for j in range(k)] for i in range(k)]
    per_class = {n: {"precision": 0.5, "recall": 0.5, "f1": 0.5 + 0.1 * seed, "support": sum(confusion[i])}
                 for i, n in enumerate(names)}
    results = {"status": "completed", "run_dir": str(run), "seed": seed,
               "choices": {"model": "tiny_bert", "peft": peft, "dataset": "acl_sup"},
               "task": {"task_type": "single_label", "label_names": list(names)},
               "test": {"test/accuracy": acc, "test/macro_f1": macro, "test/micro_f1": acc, "test/loss": 1.0 - acc},
               "test_confusion_matrix": confusion, "test_per_class": per_class,
               "versions": {"torch": "2.13.0"}, "data": {"data_hash": "a" * 64},
               "config": {"seed": seed, "peft": {"name": peft}, "paths": {"output_dir": str(run)}}}
    (run / "results.json").write_text(json.dumps(results))
    if with_predictions:
        rows = []
        for i, (a, b) in enumerate(zip(labels, preds)):
            probs = [0.1] * k
            probs[b] = 1 - 0.1 * (k - 1) - 0.01 * (i % 7)
            rows.append({"index": int(indices[i] if indices is not None else i), "text": f"ex | {i}\nline two",
                         "label": int(a), "pred": int(b), "probs": probs})
        (run / "predictions" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 120)
    for seed in (1, 2, 3):
        write_run(tmp_path / "runs", f"full_s{seed}", "full", seed, y, noisy(rng, y, 0.5, 3))
        write_run(tmp_path / "runs", f"lora_s{seed}", "lora", seed, y, noisy(rng, y, 0.8, 3))
    return tmp_path / "runs"


def test_bootstrap_delta_equals_the_tables_means_difference(folders):
    coll = collect([folders])
    for metric in ("test/accuracy", "test/macro_f1", "test/micro_f1"):
        table = build_table(coll.groups, metric, "full", n_resamples=300)
        full, lora = table.cells[("tiny_bert/full", "acl_sup")], table.cells[("tiny_bert/lora", "acl_sup")]
        boot = lora.test.bootstrap
        assert boot.delta * 100 == pytest.approx(lora.mean - full.mean, abs=1e-9)
        assert boot.seeds == [1, 2, 3] and boot.n_examples == 120 and boot.p_holm == boot.p  # one cell: Holm = raw
        assert full.test is None
        assert f"; {p_equals('p', boot.p)}, Holm {fmt_p(boot.p_holm)})" in format_cell(lora, metric)
    loss = build_table(coll.groups, "test/loss", "full")
    assert loss.cells[("tiny_bert/lora", "acl_sup")].test.bootstrap is None  # not a bootstrap metric
    assert "p_t=" in format_cell(loss.cells[("tiny_bert/lora", "acl_sup")], "test/loss")


def test_no_bootstrap_without_predictions_or_with_other_examples(tmp_path):
    y = [0, 1, 2, 1, 0, 2]
    write_run(tmp_path, "full_s1", "full", 1, y, [0, 1, 1, 1, 0, 0])
    write_run(tmp_path, "lora_s1", "lora", 1, y, [0, 1, 2, 1, 0, 0], with_predictions=False)
    write_run(tmp_path, "full_s2", "full", 2, y, [0, 1, 1, 1, 0, 0])
    write_run(tmp_path, "lora_s2", "lora", 2, y, [0, 1, 2, 1, 0, 0])
    table = build_table(collect([tmp_path]).groups, "test/accuracy", "full", n_resamples=100)
    boot = table.cells[("tiny_bert/lora", "acl_sup")].test.bootstrap
    assert boot.p is None and "no predictions/test.jsonl in lora_s1" in boot.note
    other = tmp_path / "other"
    write_run(other, "full_s1", "full", 1, y, [0, 1, 1, 1, 0, 0])
    write_run(other, "lora_s1", "lora", 1, y, [0, 1, 2, 1, 0, 0], indices=[0, 1, 2, 3, 4, 9])
    boot = build_table(collect([other]).groups, "test/accuracy", "full").cells[("tiny_bert/lora", "acl_sup")].test.bootstrap
    assert boot.p is None and "test examples differ" in boot.note


# ---------------------------------------------------------------- which tests are shown

def test_wilcoxon_is_left_out_below_6_seeds():
    a, b = [0.81, 0.835, 0.80, 0.85, 0.842, 0.86], [0.80, 0.80, 0.79, 0.82, 0.801, 0.83]
    five, six = paired_test(a[:5], b[:5]), paired_test(a, b)
    assert five.p_wilcoxon is None and five.p_ttest == pytest.approx(stats.ttest_rel(a[:5], b[:5]).pvalue)
    assert six.p_wilcoxon == pytest.approx(stats.wilcoxon(a, b).pvalue) and six.p_wilcoxon < 0.05
    assert paired_test([0.8], [0.7]).p_ttest is None  # the t-test needs 2
    table = Table("test/loss", ["m/five", "m/six"], ["d"])
    table.cells = {("m/five", "d"): Cell(a[:5], [1, 2, 3, 4, 5], test=five), ("m/six", "d"): Cell(a, list(range(6)), test=six)}
    adjust([five, six])
    assert six.p_wilcoxon_holm == six.p_wilcoxon and five.p_wilcoxon_holm is None  # not in Holm either
    rows = {ln.split(",")[0]: ln.split(",") for ln in to_csv(table).splitlines()}
    col = rows["row"].index("d p_wilcoxon")
    assert rows["m/five"][col] == "" and float(rows["m/six"][col]) == pytest.approx(six.p_wilcoxon)
    section = "\n".join(paired_section(SimpleNamespace(baseline="full"), {"test/loss": table}))
    p_w = {ln.split(" | ")[1]: ln.split(" | ")[9] for ln in section.splitlines() if ln.startswith("| test/loss")}
    assert p_w == {"m/five": "-", "m/six": f"{six.p_wilcoxon:.3f}"}
    paragraph = "\n".join(statistics_paragraph(SimpleNamespace(baseline="full")))
    assert WILCOXON_NOTE in paragraph and "2/2^n = 0.0625 at n=5" in WILCOXON_NOTE


def test_cell_format():
    test = PairedTest("m/full", [1, 2, 3, 4, 5], p_ttest=0.04, p_ttest_holm=0.08,
                      bootstrap=Bootstrap("accuracy", 0.01, 0.003, 0.0, 0.02, 100, 10000, [1, 2, 3, 4, 5], p_holm=0.012))
    cell = Cell([85.2, 84.0, 86.4, 85.2, 85.2], [1, 2, 3, 4, 5], test=test, ci=(84.31, 86.06))
    assert format_cell(cell, "test/accuracy").startswith("85.20 ± ") and \
        format_cell(cell, "test/accuracy").endswith(" [84.3, 86.1] (n=5; p=0.003, Holm 0.012)")
    test.bootstrap = None  # no bootstrap: the t-test's
    assert format_cell(cell, "test/accuracy").endswith("(n=5; p_t=0.040, Holm 0.080)")
    assert format_cell(Cell([80.0], [1], ci=mean_ci([80.0])), "test/accuracy") == "80.00 (n=1)"


# ---------------------------------------------------------------- BCa CIs of the means

def test_bca_ci_contains_the_mean_and_is_scipys():
    values = [85.1, 86.0, 84.2, 85.5, 85.3]
    low, high = mean_ci(values)
    direct = stats.bootstrap((np.array(values),), np.mean, method="BCa", rng=np.random.default_rng(0)).confidence_interval
    assert (low, high) == (direct.low, direct.high) and low <= np.mean(values) <= high
    assert mean_ci([70.0, 70.0, 70.0]) == (70.0, 70.0)  # BCa degenerate: the percentile fallback
    assert mean_ci([70.0]) is None and mean_ci([]) is None


# ---------------------------------------------------------------- error-analysis pages

def test_error_pages_on_hand_written_runs(folders, tmp_path):
    regression = tmp_path / "reg"
    run = write_run(regression, "full_s1", "full", 1, [0, 1], [0, 1])
    data = json.loads((run / "results.json").read_text())
    data["task"] = {"task_type": "regression", "label_names": []}
    data["choices"]["dataset"] = "stsb"
    for key in ("test_confusion_matrix", "test_per_class"):
        data.pop(key)
    (run / "results.json").write_text(json.dumps(data))
    (run / "predictions" / "test.jsonl").unlink()
    out = tmp_path / "rep"
    assert report_main([str(folders), str(regression), "--out", str(out), "--no-plots"]) == 0
    pages = sorted(p.name for p in (out / "groups").glob("*.md"))
    assert pages == ["tiny_bert_full__acl_sup.md", "tiny_bert_lora__acl_sup.md"]  # no page for regression
    report = (out / "report.md").read_text()
    assert "[page](groups/tiny_bert_lora__acl_sup.md)" in report and "| tiny_bert/full | stsb | 1 |" in report
    assert next(ln for ln in report.splitlines() if ln.startswith("| tiny_bert/full | stsb |")).endswith("| - |")
    page = (out / "groups" / "tiny_bert_lora__acl_sup.md").read_text()
    assert "| neg | 50.00 ± 0.00 | 50.00 ± 0.00 | 70.00 ± 10.00 |" in page  # f1 0.6, 0.7, 0.8 over seeds
    group = next(g for g in collect([folders]).groups if g.peft == "lora")
    wrong, n, why = wrong_everywhere(group)
    assert n == 120 and not why
    assert f"{len(wrong)} of 120 test examples are wrong in every one of the 3 seed(s)" in page
    assert "ex \\| 3 line two" in md_text("ex | 3\nline two") and "\n" not in md_text("a\nb")
    assert len(md_text("x" * 500)) == 200


def test_multi_label_groups_get_the_per_label_f1_only(tmp_path):
    run = write_run(tmp_path / "runs", "full_s1", "full", 1, [0, 1], [0, 1])
    data = json.loads((run / "results.json").read_text())
    data["task"] = {"task_type": "multi_label", "label_names": ["a", "b"]}
    data["test_per_label_f1"] = {"a": 0.5, "b": 0.25}
    for key in ("test_confusion_matrix", "test_per_class"):
        data.pop(key)
    (run / "results.json").write_text(json.dumps(data))
    (group,) = collect([tmp_path / "runs"]).groups
    page = group_page(group, [tmp_path])
    assert "| a | 50.00 |" in page and "| b | 25.00 |" in page
    assert "confused" not in page and "every seed" not in page
