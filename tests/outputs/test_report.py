"""`ftlab report`: one real tiny sweep (2 seeds x 2 methods) reported through the real CLI and checked
against its results.json files; plus fast unit tests of the statistics, the best-cell marking and the
grouping on hand-written results.json files."""

import json
import os
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from support.cli import TINY, run_cli
from ftlab.report.collect import collect, find_runs, group_runs
from ftlab.report.command import report_main
from ftlab.report.stats import paired_test
from ftlab.report.tables import Cell, Table, build_table, fmt_p, mark_best, to_csv, to_latex, to_markdown

SEEDS, METHODS = (1, 2), ("full", "lora")


# ---------------------------------------------------------------- the real sweep, reported by the real CLI

@pytest.fixture(scope="module")
def sweep(tmp_path_factory, _session_cache):
    """A real sweep, a mismatched copy of two of its runs, a failed run and an unfinished one; then
    `ftlab report` on it. Returns (sweep dir, report CompletedProcess)."""
    root = tmp_path_factory.mktemp("report") / "sweep"
    proc = run_cli("-m", "seed=1,2", "peft=full,lora", *TINY, "trainer.max_epochs=2", "dataset=acl_sup",
                   f"hydra.sweep.dir={root}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    keep = shutil.ignore_patterns("checkpoints", "model", "tensorboard")
    # same overrides, but the resolved config differs: an accident, never averaged in
    shutil.copytree(root / "1_tiny_bert_acl_sup_lora_s1", root / "7_lr_edited", ignore=keep)
    edit(root / "7_lr_edited", lambda r: r["config"]["optimizer"].update(lr=0.0001))
    shutil.copytree(root / "2_tiny_bert_acl_sup_full_s2", root / "8_other_torch", ignore=keep)
    edit(root / "8_other_torch", lambda r: r["versions"].update(torch="2.0.0"))
    failed = root / "9_failed"
    (failed / ".hydra").mkdir(parents=True)
    (failed / "results.json").write_text(json.dumps({
        "status": "failed", "run_dir": str(failed), "config": {"seed": 3},
        "error": {"type": "InvalidChoice", "message": "peft.r=0: expected a positive integer", "user_error": True}}))
    shutil.copytree(root / "0_tiny_bert_acl_sup_full_s1" / ".hydra", root / "10_unfinished" / ".hydra")
    report = run_cli("report", str(root), "--latex")
    assert report.returncode == 0, report.stderr[-3000:]
    return root, report


def edit(run_dir: Path, change) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    change(results)
    (run_dir / "results.json").write_text(json.dumps(results))


def sweep_results(root: Path) -> dict:
    """peft -> [results.json of seed 1, seed 2] for the sweep's own four runs."""
    out = {}
    for peft in METHODS:
        runs = [json.loads(p.read_text()) for p in sorted(root.glob(f"[0-3]_tiny_bert_acl_sup_{peft}_s*/results.json"))]
        out[peft] = sorted(runs, key=lambda r: r["seed"])
        assert [r["seed"] for r in out[peft]] == list(SEEDS)
    return out


def markdown_row(report_md: str, heading: str, row: str) -> list[str]:
    section = report_md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    line = next(ln for ln in section.splitlines() if ln.startswith(f"| {row} |"))
    return [c.strip() for c in line.strip().strip("|").split("|")][1:]


@pytest.mark.parametrize("metric, heading, pct", [
    ("test/accuracy", "test accuracy (%)", True), ("test/macro_f1", "test macro-F1 (%)", True),
    ("test/micro_f1", "test micro-F1 (%)", True), ("test/loss", "test loss", False)])
def test_table_numbers_match_results_json(sweep, metric, heading, pct):
    root, _ = sweep
    report_md = (root / "report" / "report.md").read_text()
    results = sweep_results(root)
    csv_rows = {ln.split(",")[0]: ln.split(",") for ln in (root / "report" / "tables" / f"{metric.replace('/', '_')}.csv")
                .read_text().splitlines()}
    assert csv_rows["row"][1:4] == ["acl_sup mean", "acl_sup std", "acl_sup n"]
    for peft in METHODS:
        values = [r["test"][metric] * (100 if pct else 1) for r in results[peft]]
        mean, std = statistics.mean(values), statistics.stdev(values)
        d = 2 if pct else 4
        (cell,) = markdown_row(report_md, heading, f"tiny_bert/{peft}")
        assert cell.replace("**", "").startswith(f"{mean:.{d}f} ± {std:.{d}f} [") and " (n=2" in cell
        row = csv_rows[f"tiny_bert/{peft}"]
        assert float(row[1]) == pytest.approx(mean, abs=1e-8) and float(row[2]) == pytest.approx(std, abs=1e-8)
        assert row[3] == "2"
    # the best mean of the column is bold (lower loss is better), and p-values are scipy's
    means = {p: statistics.mean(r["test"][metric] for r in results[p]) for p in METHODS}
    pick = min if metric == "test/loss" else max
    best = {p for p in METHODS if round(means[p] * (100 if pct else 1), 2 if pct else 4)
            == round(pick(means.values()) * (100 if pct else 1), 2 if pct else 4)}
    for peft in METHODS:
        (cell,) = markdown_row(report_md, heading, f"tiny_bert/{peft}")
        assert cell.startswith("**") == (peft in best)
    lora, full = ([r["test"][metric] for r in results[p]] for p in ("lora", "full"))
    (cell,) = markdown_row(report_md, heading, "tiny_bert/lora")
    if metric == "test/loss":  # no bootstrap over examples: the t-test over seeds (Wilcoxon: n=2 < 6)
        if lora != full:
            assert f"p_t={fmt_p(stats.ttest_rel(lora, full).pvalue)}, Holm " in cell
    else:  # the bootstrap over test examples
        assert "; p=" in cell or "; p<" in cell
    assert "p_W" not in cell
    assert "p" not in markdown_row(report_md, heading, "tiny_bert/full")[0].split("(n=")[1]  # the baseline itself


def test_figures_are_valid_pngs(sweep):
    root, _ = sweep
    out = root / "report"
    curves = sorted((out / "curves").glob("*.png"))
    confusion = sorted((out / "confusion").glob("*.png"))
    assert [p.name for p in curves] == ["tiny_bert_full__acl_sup.png", "tiny_bert_lora__acl_sup.png"]
    assert len(confusion) == 4  # one per run averaged
    for path in curves + confusion:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] >= 300 and image.size[1] >= 300
            image.verify()
    report_md = (out / "report.md").read_text()
    for path in curves + confusion:
        assert f"({path.relative_to(out).as_posix()})" in report_md  # report.md links every figure
    assert (out / "tables" / "test_accuracy.tex").read_text().count("\\mathbf") >= 1


def test_mismatched_failed_and_unfinished_runs_are_listed(sweep):
    root, proc = sweep
    report_md = (root / "report" / "report.md").read_text()
    left_out = report_md.split("## Left out\n", 1)[1].split("\n## ", 1)[0]
    lora_lr = json.loads((root / "1_tiny_bert_acl_sup_lora_s1" / "results.json").read_text())["config"]["optimizer"]["lr"]
    assert "7_lr_edited" in left_out and f"optimizer.lr 0.0001 vs {lora_lr}" in left_out
    torch = json.loads((root / "0_tiny_bert_acl_sup_full_s1" / "results.json").read_text())["versions"]["torch"]
    assert "8_other_torch" in left_out and f"versions.torch 2.0.0 vs {torch}" in left_out
    assert "9_failed" in report_md.split("## Failed runs\n", 1)[1] and "peft.r=0" in report_md
    assert "10_unfinished" in report_md.split("## Unfinished runs\n", 1)[1]
    for name in ("7_lr_edited", "8_other_torch", "9_failed", "10_unfinished", "optimizer.lr"):
        assert name in proc.stdout  # the terminal summary says it too
    assert "(n=2" in report_md and "(n=3" not in report_md  # the copies were never averaged in
    runs_csv = (root / "report" / "runs.csv").read_text()
    assert ",failed,0," in runs_csv and ",unfinished,0," in runs_csv and runs_csv.count(",completed,1,") == 4


def csv_cells(root: Path, metric: str, row: str) -> dict:
    """{field: value} of one row of a table's CSV (its single dataset, acl_sup)."""
    lines = (root / "report" / "tables" / f"{metric.replace('/', '_')}.csv").read_text().splitlines()
    header, rows = lines[0].split(","), {ln.split(",")[0]: ln.split(",") for ln in lines[1:]}
    return {h.removeprefix("acl_sup "): v for h, v in zip(header, rows[row])}


def sweep_predictions(root: Path) -> dict:
    """peft -> [predictions/test.jsonl rows of seed 1, seed 2]."""
    return {peft: [[json.loads(ln) for ln in (root / f"{i}_tiny_bert_acl_sup_{peft}_s{seed}" / "predictions" / "test.jsonl")
                    .read_text().splitlines()] for i, seed in zip(order, SEEDS)]
            for peft, order in (("full", (0, 2)), ("lora", (1, 3)))}


@pytest.mark.parametrize("metric, heading", [("test/accuracy", "test accuracy (%)"), ("test/macro_f1", "test macro-F1 (%)")])
def test_report_has_bootstrap_p_with_holm(sweep, metric, heading):
    root, _ = sweep
    report_md = (root / "report" / "report.md").read_text()
    results, preds = sweep_results(root), sweep_predictions(root)
    lora = csv_cells(root, metric, "tiny_bert/lora")
    assert lora["p_bootstrap"] and lora["p_bootstrap_holm"] and lora["ci_low"] and lora["ci_high"]
    p, holm_p = float(lora["p_bootstrap"]), float(lora["p_bootstrap_holm"])
    assert 1 / 10001 - 1e-12 <= p <= holm_p <= 1
    (cell,) = markdown_row(report_md, heading, "tiny_bert/lora")
    shown = f"p{fmt_p(p)}" if fmt_p(p).startswith("<") else f"p={fmt_p(p)}"
    assert f"; {shown}, Holm {fmt_p(holm_p)})" in cell
    # δ at the observed sample: the difference of the table's means (results.json, float32) ...
    means = {peft: statistics.mean(r["test"][metric] for r in results[peft]) for peft in METHODS}
    assert float(lora["delta_bootstrap"]) == pytest.approx(100 * (means["lora"] - means["full"]), abs=1e-4)

    # ... and exactly (float64) that of the metric recomputed from the prediction files
    def score(rows):
        y, pr = [r["label"] for r in rows], [r["pred"] for r in rows]
        if metric == "test/accuracy":
            return sum(a == b for a, b in zip(y, pr)) / len(y)
        f1s = [2 * sum(a == b == c for a, b in zip(y, pr)) / (y.count(c) + pr.count(c))
               for c in set(y) | set(pr)]
        return sum(f1s) / len(f1s)
    delta = statistics.mean(score(a) - score(b) for a, b in zip(preds["lora"], preds["full"]))
    assert float(lora["delta_bootstrap"]) == pytest.approx(100 * delta, abs=1e-9)
    paired = report_md.split("## Paired tests against `full`\n", 1)[1].split("\n## ", 1)[0]
    row = next(ln for ln in paired.splitlines() if ln.startswith(f"| {metric} | tiny_bert/lora |"))
    assert f"| {fmt_p(p)} | {fmt_p(holm_p)} |" in row and "32 x 2 seed(s), B=10000" in row
    assert "Wilcoxon signed-rank is not shown for n ≤ 5 paired seeds" in report_md
    assert "Berg-Kirkpatrick et al., 2012; Dror et al., 2018" in report_md and "Holm, 1979" in report_md


def group_page_section(page: str, heading: str) -> list[list[str]]:
    """The table rows of one section of an error-analysis page, as lists of cells."""
    section = page.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ")][2:]
    return [[c.strip() for c in ln.strip().strip("|").split(" | ")] for ln in rows]


@pytest.mark.parametrize("peft", METHODS)
def test_error_analysis_pages(sweep, peft):
    root, _ = sweep
    out = root / "report"
    name = f"groups/tiny_bert_{peft}__acl_sup.md"
    page = (out / name).read_text()
    groups = (out / "report.md").read_text().split("## Groups\n", 1)[1].split("\n## ", 1)[0]
    assert "| error analysis |" in groups and f"[page]({name})" in groups
    results, preds = sweep_results(root)[peft], sweep_predictions(root)[peft]
    names = results[0]["task"]["label_names"]
    # the confused pairs: the summed confusion matrices' off-diagonal cells, most frequent first
    k = len(names)
    total = [[sum(r["test_confusion_matrix"][i][j] for r in results) for j in range(k)] for i in range(k)]
    expected = sorted(((i, j) for i in range(k) for j in range(k) if i != j and total[i][j]),
                      key=lambda ij: (-total[ij[0]][ij[1]], ij))[:10]
    shown = group_page_section(page, "Most confused pairs")
    assert [(r[0], r[1], int(r[2])) for r in shown] == [(names[i], names[j], total[i][j]) for i, j in expected]
    for r, (i, j) in zip(shown, expected):
        assert r[3] == ", ".join(f"s{s}: {run['test_confusion_matrix'][i][j]}" for s, run in zip(SEEDS, results))
        assert float(r[4]) == pytest.approx(100 * total[i][j] / sum(total[i]), abs=0.05)
    # the examples every seed gets wrong: exactly those wrong in every run's predictions file
    wrong = set.intersection(*({ln["index"] for ln in rows if ln["pred"] != ln["label"]} for rows in preds))
    assert f"{len(wrong)} of {len(preds[0])} test examples are wrong in every one of the 2 seed(s)" in page
    listed = group_page_section(page, "Test examples every seed gets wrong")
    assert len(listed) == min(20, len(wrong)) and {int(r[0]) for r in listed} <= wrong
    by_index = [{ln["index"]: ln for ln in rows} for rows in preds]
    confidence = {i: statistics.mean(run[i]["probs"][run[i]["pred"]] for run in by_index) for i in wrong}
    assert [int(r[0]) for r in listed] == sorted(wrong, key=lambda i: (-confidence[i], i))[:20]
    for r in listed:
        line = by_index[0][int(r[0])]
        assert r[2] == names[line["label"]]
        assert r[3] == ", ".join(f"s{s}: {names[run[int(r[0])]['pred']]}" for s, run in zip(SEEDS, by_index))
    per_class = group_page_section(page, "Per class")
    assert [r[0] for r in per_class] == names
    for r in per_class:
        f1 = [run["test_per_class"][r[0]]["f1"] * 100 for run in results]
        assert r[3] == f"{statistics.mean(f1):.2f} ± {statistics.stdev(f1):.2f}"


# ---------------------------------------------------------------- statistics

def test_paired_tests_equal_scipy():
    a, b = [0.81, 0.835, 0.80, 0.85, 0.842, 0.83], [0.80, 0.80, 0.79, 0.82, 0.801, 0.832]
    t = paired_test(a, b)
    assert t.p_ttest == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert t.t_stat == pytest.approx(stats.ttest_rel(a, b).statistic, rel=1e-12)
    assert t.p_wilcoxon == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-12)
    assert t.diff_mean == pytest.approx(statistics.mean(x - y for x, y in zip(a, b)))
    assert t.diff_std == pytest.approx(statistics.stdev(x - y for x, y in zip(a, b)))


def test_paired_tests_degenerate_cases():
    one = paired_test([0.8], [0.7])
    assert one.p_ttest is None and one.p_wilcoxon is None and "fewer than 2" in one.note
    same = paired_test([0.8, 0.7], [0.8, 0.7])
    assert same.p_ttest is None and same.diff_mean == 0 and "identical" in same.note


# ---------------------------------------------------------------- tables

def table_of(metric: str, means: dict) -> Table:
    table = Table(metric, list(means), ["acl_sup"])
    table.cells = {(row, "acl_sup"): Cell([m - 0.01, m + 0.01], [1, 2]) for row, m in means.items()}
    mark_best(table)
    return table


def test_best_cell_lower_is_better_for_loss():
    loss = table_of("test/loss", {"a/full": 0.50, "a/lora": 0.40, "a/bitfit": 0.45})
    assert [loss.cells[(r, "acl_sup")].best for r in loss.rows] == [False, True, False]
    acc = table_of("test/accuracy", {"a/full": 0.80, "a/lora": 0.70, "a/bitfit": 0.80})
    assert [acc.cells[(r, "acl_sup")].best for r in acc.rows] == [True, False, True]  # ties both bold
    md = to_markdown(loss)
    assert "| a/lora | **0.4000 ± 0.0141** (n=2) |" in md and "| a/full | 0.5000 ± 0.0141 (n=2) |" in md
    assert "$\\mathbf{0.4000}^{\\pm 0.0141}$" in to_latex(loss)


# ---------------------------------------------------------------- grouping on hand-written results.json

def fake_run(root: Path, name: str, *, seed=1, peft="lora", model="tiny_bert", dataset="acl_sup", subset=None,
             lr=5e-4, torch="2.13.0", data_hash="a" * 64, acc=0.8, loss=0.5, overrides=None, age=0) -> Path:
    run_dir = root / name
    config = {"paths": {"output_dir": str(run_dir), "cache_dir": f"/tmp/cache-{name}"},
              "optimizer": {"lr": lr}, "seed": seed, "dataset": {"subset": subset},
              "trainer": {"default_root_dir": str(run_dir), "max_epochs": 2},
              "callbacks": {"model_checkpoint": {"dirpath": f"{run_dir}/checkpoints"}},
              "logger": {"tensorboard": {"save_dir": str(run_dir)}}}
    results = {"status": "completed", "run_dir": str(run_dir), "seed": seed,
               "choices": {"model": model, "peft": peft, "dataset": dataset},
               "task": {"task_type": "single_label", "label_names": ["neg", "pos"]},
               "test": {"test/accuracy": acc, "test/loss": loss}, "test_confusion_matrix": [[3, 1], [0, 4]],
               "history": [{"epoch": 0, "train/loss": 0.7, "val/accuracy": 0.6}, {"epoch": 1, "train/loss": 0.5, "val/accuracy": 0.7}],
               "versions": {"torch": torch, "python": "3.11.7"}, "data": {"data_hash": data_hash}, "config": config}
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(results))
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in [f"seed={seed}", *(overrides or [])]))
    stamp = 1_700_000_000 + age
    os.utime(run_dir / "results.json", (stamp, stamp))
    return run_dir


def test_seeds_group_although_their_run_dirs_differ(tmp_path):
    for seed, acc in zip((1, 2, 3), (0.80, 0.82, 0.84)):
        fake_run(tmp_path, f"{seed}_run_s{seed}", seed=seed, acc=acc)
    coll = collect([tmp_path])
    assert len(coll.groups) == 1 and coll.groups[0].seeds == [1, 2, 3] and not coll.excluded
    table = build_table(coll.groups, "test/accuracy")
    low, high = stats.bootstrap(([80.0, 82.0, 84.0],), np.mean, rng=np.random.default_rng(0)).confidence_interval
    assert f"| tiny_bert/lora | **82.00 ± 2.00** [{low:.1f}, {high:.1f}] (n=3) |" in to_markdown(table)
    assert to_csv(table).splitlines()[1].startswith("tiny_bert/lora,82.0,2.0,3,1,")


@pytest.mark.parametrize("change, reason", [
    ({"lr": 1e-3}, "optimizer.lr 0.001 vs 0.0005"),
    ({"torch": "2.0.0"}, "versions.torch 2.0.0 vs 2.13.0"),
    ({"data_hash": "b" * 64}, "data_hash bbbbbbbbbbbb vs aaaaaaaaaaaa")])
def test_accidental_mismatch_is_left_out_with_the_differing_key(tmp_path, change, reason):
    fake_run(tmp_path, "0_s1", seed=1)
    fake_run(tmp_path, "1_s2", seed=2)
    odd = fake_run(tmp_path, "2_s3", seed=3, age=10, **change)  # newest, but alone
    groups, excluded = group_runs(find_runs([tmp_path]))
    assert len(groups) == 1 and groups[0].seeds == [1, 2]
    assert [r.path for r, _ in excluded] == [odd.resolve()] and reason in excluded[0][1]


def test_tie_keeps_the_most_recent_group(tmp_path):
    fake_run(tmp_path, "old", seed=1, lr=1e-3, age=0)
    fake_run(tmp_path, "new", seed=2, lr=5e-4, age=100)
    groups, excluded = group_runs(find_runs([tmp_path]))
    assert [r.path.name for r in groups[0].runs] == ["new"] and excluded[0][0].path.name == "old"


def test_deliberate_overrides_are_separate_rows_and_duplicate_seeds_are_dropped(tmp_path):
    for seed in (1, 2):
        fake_run(tmp_path, f"a{seed}", seed=seed, lr=1e-3, overrides=["optimizer.lr=0.001"])
        fake_run(tmp_path, f"b{seed}", seed=seed, lr=5e-4, overrides=["optimizer.lr=0.0005"])
    fake_run(tmp_path, "b1_again", seed=1, lr=5e-4, overrides=["optimizer.lr=0.0005"], age=50)
    fake_run(tmp_path, "full1", seed=1, peft="full", lr=5e-5, dataset="glue", subset="rte")
    coll = collect([tmp_path])
    assert coll.baseline == "full"
    labels = {(g.label, g.dataset): [r.path.name for r in g.runs] for g in coll.groups}
    assert labels == {("tiny_bert/lora (optimizer.lr=0.001)", "acl_sup"): ["a1", "a2"],
                      ("tiny_bert/lora (optimizer.lr=0.0005)", "acl_sup"): ["b1_again", "b2"],
                      ("tiny_bert/full", "glue/rte"): ["full1"]}
    assert [(r.path.name, "seed 1 repeated" in why) for r, why in coll.excluded] == [("b1", True)]


def test_failed_unfinished_and_unreadable_runs_are_found(tmp_path):
    fake_run(tmp_path, "ok", seed=1)
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "results.json").write_text(json.dumps({"status": "failed", "error": {"type": "X", "message": "boom"}}))
    (tmp_path / "killed" / ".hydra").mkdir(parents=True)
    (tmp_path / "killed" / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "results.json").write_text("{")
    status = {r.path.name: (r.status, r.reason) for r in find_runs([tmp_path])}
    assert status["ok"][0] == "completed" and status["failed"] == ("failed", "X: boom")
    assert status["killed"][0] == "unfinished" and status["torn"][0] == "unreadable"


def test_n1_shows_no_std_and_report_runs_in_process(tmp_path, capsys):
    fake_run(tmp_path, "full1", seed=1, peft="full", acc=0.8602)
    fake_run(tmp_path, "lora1", seed=1, acc=0.85)
    assert report_main([str(tmp_path), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "| tiny_bert/full | **86.02** (n=1) |" in out and "| tiny_bert/lora | 85.00 (n=1) |" in out
    assert (tmp_path / "rep" / "report.md").is_file() and not (tmp_path / "rep" / "curves").exists()


# ---------------------------------------------------------------- user errors: short message, exit 1

def test_errors_are_short(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert report_main([str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no runs found under") and "fix:" in err and "Traceback" not in err
    assert report_main([str(tmp_path / "missing")]) == 1
    assert "not a directory" in capsys.readouterr().err
    fake_run(tmp_path / "runs", "r1")
    assert report_main([str(tmp_path / "runs"), "--baseline", "dora"]) == 1
    assert "use one of: lora" in capsys.readouterr().err


def test_the_report_modules_import_in_one_direction():
    """runs <- grouping <- collect <- command (and the others): no module of the report imports,
    even for type checking only, one that imports it back."""
    import ast

    import ftlab.report

    folder = Path(ftlab.report.__file__).parent
    imports = {}
    for file in folder.glob("*.py"):
        tree = ast.parse(file.read_text())
        imports[file.stem] = {n.module.rsplit(".", 1)[1] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                              and (n.module or "").startswith("ftlab.report.")}

    def reaches(start: str, seen: set[str]) -> set[str]:
        for name in imports.get(start, ()):
            if name not in seen:
                seen.add(name)
                reaches(name, seen)
        return seen

    assert imports["grouping"] == {"runs"} and "collect" in imports["command"]
    assert [name for name in imports if name in reaches(name, set())] == []
