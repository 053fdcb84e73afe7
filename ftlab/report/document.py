"""report.md: the tables, the statistics and paired tests, links to every figure, file and error-analysis
page, and every run left out."""

from __future__ import annotations

import datetime
from pathlib import Path

from ftlab.report.collect import Collection
from ftlab.report.significance import BOOTSTRAP_METRICS, RESAMPLES, wilcoxon_min_p
from ftlab.report.tables import NAMES, Table, decimals, fmt_p, format_ci, lower_is_better, scale, title, to_markdown

WILCOXON_NOTE = ("Wilcoxon signed-rank is not shown for n ≤ 5 paired seeds: its smallest two-sided p is "
                 f"2/2^n = {wilcoxon_min_p(5):.4g} at n=5 (it is shown, and Holm-adjusted, from n=6).")


def display_path(path: Path, roots: list[Path]) -> str:
    """A run folder relative to the directory it was found under (`sweep/3_tiny_bert_...`)."""
    for root in roots:
        try:
            return str(Path(root.resolve().name) / path.relative_to(root.resolve()))
        except ValueError:
            continue
    return str(path)


def _link(path: Path) -> str:
    return path.as_posix().replace(" ", "%20")


def statistics_paragraph(coll: Collection, n_resamples: int = RESAMPLES) -> list[str]:
    """What each number of a cell is, the methods with their references, and what is not shown and why."""
    lines = ["**Statistics.** Each cell: mean ± sample std (ddof=1) over seeds; [low, high]: 95% bootstrap CI "
             "of that mean over the seeds (`scipy.stats.bootstrap`, BCa, percentile where BCa is degenerate; "
             "from 2 seeds, and rough with few); n: number of seeds."]
    if not coll.baseline:
        return lines + ["No paired tests: no baseline method (`--baseline <peft>`; `full` by default).", ""]
    metrics = ", ".join(NAMES[m.split("/", 1)[1]] for m in BOOTSTRAP_METRICS)
    lines += [
        f"p: paired bootstrap against peft=`{coll.baseline}` over the test examples, pooled over the seeds both "
        "have (Berg-Kirkpatrick et al., 2012; Dror et al., 2018): δ = mean over paired seeds of method minus "
        f"baseline, recomputed on B={n_resamples} resamples of the test examples (the same resample for every "
        "seed and both methods; numpy `default_rng(0)`); two-sided p = (1 + #{|δ* − δ| ≥ |δ|}) / (B + 1), so "
        f"never below 1/(B+1) = {1 / (n_resamples + 1):.2g}. Holm: that p adjusted over the cells of its table "
        "(Holm, 1979). A cell without a bootstrap shows p_t, the paired t-test over seeds (n ≥ 2), and its "
        "Holm adjustment (see [paired tests](#paired-tests-against-" + coll.baseline + ")).", "",
        f"The bootstrap covers test {metrics} of single-label classification runs with predictions/test.jsonl; "
        "loss, MCC, the positive class's F1, regression and multi-label metrics have the tests over seeds only. "
        + WILCOXON_NOTE, ""]
    return lines


def paired_section(coll: Collection, tables: dict[str, Table]) -> list[str]:
    lines = [f"## Paired tests against `{coll.baseline}`", "",
             "Method minus baseline on the same model, dataset and seed (Δ in the table's unit); "
             "p_t: paired t-test (`scipy.stats.ttest_rel`), p_W: Wilcoxon signed-rank (`scipy.stats.wilcoxon`), "
             "both over seeds; bootstrap: paired bootstrap over test examples pooled over the paired seeds, its "
             "Δ with a 95% percentile CI. Holm: adjusted over the cells of the metric's table, per test; "
             "p_W only from 6 paired seeds (see above).", "",
             "| metric | model/peft | dataset | seeds paired | Δ mean ± std | t | p_t | p_t Holm | W | p_W | p_W Holm "
             "| bootstrap Δ [95% CI] | test examples | p_boot | p_boot Holm | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    num = (lambda v: "-" if v is None else f"{v:.4g}")  # noqa: E731
    for metric, table in tables.items():
        k, d = scale(metric), decimals(metric)
        for (row, col), cell in table.cells.items():
            t = cell.test
            if t is None:
                continue
            diff = "-" if t.diff_mean is None else f"{t.diff_mean * k:+.{d}f}" + (
                f" ± {t.diff_std * k:.{d}f}" if t.diff_std is not None else "")
            b = t.bootstrap
            boot, examples, notes = "-", "-", [t.note] if t.note else []
            if b is not None and b.delta is not None:
                boot = f"{b.delta * k:+.{d}f} {format_ci((b.ci_low * k, b.ci_high * k), metric)}"
                examples = f"{b.n_examples} x {len(b.seeds)} seed(s), B={b.n_resamples}"
            if b is not None and b.note:
                notes.append(f"bootstrap: {b.note}")
            lines.append(f"| {metric} | {row} | {col} | {t.n} ({', '.join(map(str, t.seeds))}) | {diff} | "
                         f"{num(t.t_stat)} | {fmt_p(t.p_ttest)} | {fmt_p(t.p_ttest_holm)} | {num(t.w_stat)} | "
                         f"{fmt_p(t.p_wilcoxon)} | {fmt_p(t.p_wilcoxon_holm)} | {boot} | {examples} | "
                         f"{fmt_p(b.p if b else None)} | {fmt_p(b.p_holm if b else None)} | {'; '.join(notes)} |")
    return lines + [""]


def report_markdown(coll: Collection, tables: dict[str, Table], links: dict, curves: dict, confusion: dict,
                    pages: dict | None = None, n_resamples: int = RESAMPLES) -> str:
    """`pages`: (row, dataset) -> error-analysis page, relative to the report's folder."""
    pages = pages or {}
    roots = ", ".join(f"`{r}`" for r in coll.roots)
    n_done = len(coll.with_status("completed"))
    lines = ["# ftlab report", "",
             f"Runs under {roots}; written {datetime.datetime.now().isoformat(timespec='seconds')}.", "",
             f"{len(coll.runs)} run folder(s): {n_done} completed ({sum(len(g.runs) for g in coll.groups)} used in "
             f"{len(coll.groups)} group(s), {len(coll.excluded)} left out), {len(coll.with_status('failed'))} failed, {len(coll.with_status('interrupted'))} interrupted, "
             f"{len(coll.with_status('unfinished', 'unreadable'))} unfinished.", "",
             "Runs are averaged over seeds only when their resolved config (but the seed and the run's own paths), "
             "package versions and data hash agree. Best mean per column in **bold** (lower is better for loss "
             "and MSE).", ""]
    lines += statistics_paragraph(coll, n_resamples)
    for metric, table in tables.items():
        files = " · ".join(f"[{kind}]({_link(p)})" for kind, p in links.get(metric, {}).items())
        better = "lower is better" if lower_is_better(metric) else "higher is better"
        lines += [f"## {title(metric)}", "", to_markdown(table), "", f"{better}; {files}", ""]
    if coll.baseline and any(c.test for t in tables.values() for c in t.cells.values()):
        lines += paired_section(coll, tables)
    if curves:
        lines += ["## Learning curves", "", "train loss and validation metrics per epoch, mean ± std over seeds.", ""]
        for (row, col), path in curves.items():
            lines += [f"### {row} on {col}", "", f"![{row} on {col}]({_link(path)})", ""]
    lines += ["## Groups", "", "| model/peft | dataset | seeds | runs | confusion matrices (test) | error analysis |",
              "| --- | --- | --- | --- | --- | --- |"]
    for g in coll.groups:
        runs = "<br>".join(f"`{display_path(r.path, coll.roots)}`" for r in g.runs)
        figs = " ".join(f"[s{r.seed}]({_link(confusion[r.path])})" for r in g.runs if r.path in confusion) or "-"
        page = pages.get((g.label, g.dataset))
        errors = f"[page]({_link(page)})" if page else "-"
        lines.append(f"| {g.label} | {g.dataset} | {', '.join(map(str, g.seeds))} | {runs} | {figs} | {errors} |")
    lines.append("")
    for heading, items in (("Left out", [(r, why) for r, why in coll.excluded]),
                           ("Failed runs", [(r, r.reason) for r in coll.with_status("failed")]),
                           ("Interrupted runs (ftlab resume=<run dir> continues each)",
                            [(r, r.reason) for r in coll.with_status("interrupted")]),
                           ("Unfinished runs", [(r, r.reason) for r in coll.with_status("unfinished", "unreadable")])):
        lines += [f"## {heading}", ""]
        lines += [f"- `{display_path(r.path, coll.roots)}`: {why}" for r, why in items] or ["none"]
        lines.append("")
    lines += ["Every run found, with its status and reason: [runs.csv](runs.csv).", ""]
    return "\n".join(lines)
