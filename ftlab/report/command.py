"""`ftlab report <dir>...`: tables (Markdown, CSV, LaTeX), paired tests, figures, error-analysis pages
and report.md for runs.

    ftlab report outputs/multirun/2026-01-01/10-00-00-000000 [more dirs] [--out DIR]
                 [--baseline full] [--latex] [--no-plots]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from ftlab.errors import UserError
from ftlab.report.collect import Collection, collect
from ftlab.report.document import display_path, report_markdown
from ftlab.report.error_analysis import write_pages
from ftlab.report.plots import confusion_matrix, learning_curves, slug
from ftlab.report.search import search_files, search_markdown, search_summary
from ftlab.sweepers.study import is_search, load_search
from ftlab.report.tables import Table, build_table, metrics_of, short, title, to_csv, to_latex, to_markdown


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftlab report",
        description="Average finished runs over seeds (grouped by everything but the seed), test each method "
                    "against a baseline over paired seeds, plot learning curves and confusion matrices.")
    parser.add_argument("dirs", nargs="+", type=Path, help="run or sweep directories (searched recursively)")
    parser.add_argument("--out", type=Path, help="where to write the report (default: <first dir>/report)")
    parser.add_argument("--baseline", help="peft method the others are tested against (default: full, if present)")
    parser.add_argument("--latex", action="store_true", help="also write each table as LaTeX")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures (faster on large sweeps)")
    return parser


def write_figures(coll: Collection, out: Path) -> tuple[dict, dict]:
    """(row, column) -> curves PNG; run dir -> confusion PNG (paths relative to `out`)."""
    curves, confusion = {}, {}
    for g in coll.groups:
        path = learning_curves(g, out / "curves" / f"{slug(g.label)}__{slug(g.dataset)}.png")
        if path:
            curves[(g.label, g.dataset)] = path.relative_to(out)
        for run in g.runs:
            path = confusion_matrix(run, out / "confusion" / f"{slug(run.path.parent.name)}__{slug(run.path.name)}.png")
            if path:
                confusion[run.path] = path.relative_to(out)
    return curves, confusion


def runs_csv(coll: Collection) -> str:
    """Every run folder found, whether it is in a table and why not."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run_dir", "status", "used", "row", "column", "seed", "reason"])
    label = {r.path: g.label for g in coll.groups for r in g.runs}
    excluded = {r.path: why for r, why in coll.excluded}
    for run in coll.runs:
        row = label.get(run.path, f"{run.model}/{run.peft}" if run.results else "")
        writer.writerow([run.path, run.status, int(run.path in label), row, run.dataset if run.results else "",
                         run.seed if run.results else "", excluded.get(run.path, run.reason)])
    return out.getvalue()


def headline_metrics(coll: Collection, metrics: list[str]) -> list[str]:
    """The metrics the runs picked their checkpoint by (test/ side), accuracy first when there is one."""
    monitors = [f"test/{short(r.results.get('monitor', {}).get('metric', ''))}" for g in coll.groups for r in g.runs]
    wanted = ["test/accuracy", *dict.fromkeys(monitors)]
    return [m for m in dict.fromkeys(wanted) if m in metrics][:2] or metrics[:1]


def summary(coll: Collection, tables: dict[str, Table], report: Path) -> str:
    done = coll.with_status("completed")
    lines = [f"ftlab report: {len(coll.runs)} run folder(s): {len(done)} completed "
             f"({sum(len(g.runs) for g in coll.groups)} in {len(coll.groups)} group(s), {len(coll.excluded)} left out), "
             f"{len(coll.with_status('failed'))} failed, {len(coll.with_status('interrupted'))} interrupted, {len(coll.with_status('unfinished', 'unreadable'))} unfinished"]
    if coll.baseline:
        lines.append(f"paired tests against peft={coll.baseline} (p: paired bootstrap over test examples, "
                     "p_t: paired t-test over seeds; Holm: adjusted over the table)")
    for metric in headline_metrics(coll, list(tables)):
        lines += ["", f"{title(metric)}, mean ± std over seeds, best in **bold**:", to_markdown(tables[metric])]
    for heading, items in (("left out", [(r, why) for r, why in coll.excluded]),
                           ("failed", [(r, r.reason) for r in coll.with_status("failed")]),
                           ("interrupted", [(r, r.reason) for r in coll.with_status("interrupted")]),
                           ("unfinished", [(r, r.reason) for r in coll.with_status("unfinished", "unreadable")])):
        if items:
            lines += ["", f"{heading}:"] + [f"  {display_path(r.path, coll.roots)}: {why}" for r, why in items]
    lines += ["", f"report: {report}"]
    return "\n".join(lines)


def make_report(dirs: list[Path], out: Path | None = None, baseline: str | None = None, latex: bool = False,
                plots: bool = True, stream=None) -> int:
    stream = stream or sys.stdout
    out = out or dirs[0] / "report"
    coll = collect(dirs, skip=out, baseline=baseline)
    metrics = metrics_of(coll.groups)
    tables = {m: build_table(coll.groups, m, coll.baseline) for m in metrics}
    files: dict[str, dict[str, Path]] = {}
    (out / "tables").mkdir(parents=True, exist_ok=True)
    for metric, table in tables.items():
        name = slug(metric.replace("/", "_"))
        files[metric] = {"Markdown": out / "tables" / f"{name}.md", "CSV": out / "tables" / f"{name}.csv"}
        files[metric]["Markdown"].write_text(f"{title(metric)}\n\n{to_markdown(table)}\n")
        files[metric]["CSV"].write_text(to_csv(table))
        if latex:
            files[metric]["LaTeX"] = out / "tables" / f"{name}.tex"
            files[metric]["LaTeX"].write_text(to_latex(table))
    curves, confusion = write_figures(coll, out) if plots else ({}, {})
    (out / "runs.csv").write_text(runs_csv(coll))
    report = out / "report.md"
    links = {m: {kind: p.relative_to(out) for kind, p in f.items()} for m, f in files.items()}
    pages = write_pages(coll, out)
    document = report_markdown(coll, tables, links, curves, confusion, pages)
    searches = [load_search(d) for d in dirs if is_search(d)]  # a search folder: its trials and best trial
    if searches:
        sections = [line for s in searches for line in search_markdown(s, search_files(s, out, plots))]
        head, groups_heading, rest = document.partition("## Groups")
        document = head + "\n".join(sections) + "\n" + groups_heading + rest
    report.write_text(document)
    print(summary(coll, tables, report), file=stream)
    for search in searches:
        print(search_summary(search), file=stream)
    if not coll.groups:
        raise UserError(f"no completed runs to tabulate under {', '.join(map(str, dirs))} (listed in {report})",
                        "fix the failed runs listed above and run them again")
    return 0


def report_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        return make_report(args.dirs, out=args.out, baseline=args.baseline, latex=args.latex, plots=not args.no_plots)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
