"""report.md: the tables, the paired tests, links to every figure and file, and every run left out."""

from __future__ import annotations

import datetime
from pathlib import Path

from ftlab.report.collect import Collection
from ftlab.report.tables import Table, decimals, fmt_p, lower_is_better, scale, title, to_markdown


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


def paired_section(coll: Collection, tables: dict[str, Table]) -> list[str]:
    lines = [f"## Paired tests against `{coll.baseline}`", "",
             "Method minus baseline on the same model, dataset and seed (Δ in the table's unit); "
             "p_t: paired t-test (`scipy.stats.ttest_rel`), p_W: Wilcoxon signed-rank (`scipy.stats.wilcoxon`).", "",
             "| metric | model/peft | dataset | seeds paired | Δ mean ± std | t | p_t | W | p_W | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for metric, table in tables.items():
        for (row, col), cell in table.cells.items():
            t = cell.test
            if t is None:
                continue
            k, d = scale(metric), decimals(metric)
            diff = "-" if t.diff_mean is None else f"{t.diff_mean * k:+.{d}f}" + (
                f" ± {t.diff_std * k:.{d}f}" if t.diff_std is not None else "")
            num = (lambda v: "-" if v is None else f"{v:.4g}")  # noqa: E731
            lines.append(f"| {metric} | {row} | {col} | {t.n} ({', '.join(map(str, t.seeds))}) | {diff} | "
                         f"{num(t.t_stat)} | {fmt_p(t.p_ttest)} | {num(t.w_stat)} | {fmt_p(t.p_wilcoxon)} | {t.note} |")
    return lines + [""]


def report_markdown(coll: Collection, tables: dict[str, Table], links: dict, curves: dict, confusion: dict) -> str:
    roots = ", ".join(f"`{r}`" for r in coll.roots)
    n_done = len(coll.with_status("completed"))
    lines = ["# ftlab report", "",
             f"Runs under {roots}; written {datetime.datetime.now().isoformat(timespec='seconds')}.", "",
             f"{len(coll.runs)} run folder(s): {n_done} completed ({sum(len(g.runs) for g in coll.groups)} used in "
             f"{len(coll.groups)} group(s), {len(coll.excluded)} left out), {len(coll.with_status('failed'))} failed, {len(coll.with_status('interrupted'))} interrupted, "
             f"{len(coll.with_status('unfinished', 'unreadable'))} unfinished.", "",
             "Each cell: mean ± sample std (ddof=1) over seeds, n = number of seeds; runs are averaged only when "
             "their resolved config (but the seed and the run's own paths), package versions and data hash agree. "
             "Best per column in **bold** (lower is better for loss and MSE)."]
    if coll.baseline:
        lines.append(f"p_t / p_W: paired t-test / Wilcoxon signed-rank against peft=`{coll.baseline}` over the seeds "
                     "both have (see [paired tests](#paired-tests-against-" + coll.baseline + ")).")
    else:
        lines.append("No paired tests: no baseline method (`--baseline <peft>`; `full` by default).")
    lines.append("")
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
    lines += ["## Groups", "", "| model/peft | dataset | seeds | runs | confusion matrices (test) |",
              "| --- | --- | --- | --- | --- |"]
    for g in coll.groups:
        runs = "<br>".join(f"`{display_path(r.path, coll.roots)}`" for r in g.runs)
        figs = " ".join(f"[s{r.seed}]({_link(confusion[r.path])})" for r in g.runs if r.path in confusion) or "-"
        lines.append(f"| {g.label} | {g.dataset} | {', '.join(map(str, g.seeds))} | {runs} | {figs} |")
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
