"""Mean ± std over seeds per (row, column) for one metric; the best cell per column marked.

Rows are model/method (a group's label), columns datasets. Accuracy and F1-type metrics are shown
in %, MCC and correlations x100 (as GLUE reports them), loss and MSE raw; std is the sample std
(ddof=1) and is left out when n=1; [low, high] is a 95% bootstrap CI of the mean (BCa, from 2 seeds).
A cell against the baseline shows the p of the paired bootstrap over test examples and its Holm
adjustment over the table, or the paired t-test's where there is no bootstrap. Lower is better for
loss and MSE, higher for everything else.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field

from ftlab.report.grouping import Group
from ftlab.report.significance import RESAMPLES, mean_ci
from ftlab.report.stats import PairedTest, adjust, baseline_for, compare, seed_values

METRIC_ORDER = ("accuracy", "macro_f1", "micro_f1", "f1", "mcc", "pearson", "spearman", "loss", "mse")
PERCENT = ("accuracy", "macro_f1", "micro_f1", "f1")
TIMES_100 = ("mcc", "pearson", "spearman")
LOWER_IS_BETTER = ("loss", "mse")
NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "micro_f1": "micro-F1", "f1": "F1 (positive class)",
         "mcc": "MCC", "pearson": "Pearson r", "spearman": "Spearman rho", "loss": "loss", "mse": "MSE"}


def short(metric: str) -> str:
    return metric.split("/", 1)[-1]


def scale(metric: str) -> float:
    return 100.0 if short(metric) in PERCENT + TIMES_100 else 1.0


def unit(metric: str) -> str:
    return "%" if short(metric) in PERCENT else "x100" if short(metric) in TIMES_100 else ""


def decimals(metric: str) -> int:
    return 2 if scale(metric) != 1.0 else 4


def lower_is_better(metric: str) -> bool:
    return short(metric) in LOWER_IS_BETTER or short(metric).endswith(("loss", "mse", "error"))


def title(metric: str) -> str:
    name = f"{metric.split('/', 1)[0]} {NAMES.get(short(metric), short(metric))}"
    return f"{name} ({unit(metric)})" if unit(metric) else name


@dataclass
class Cell:
    values: list[float]  # display scale, in seed order
    seeds: list
    best: bool = False
    test: PairedTest | None = None
    ci: tuple[float, float] | None = None  # 95% bootstrap CI of the mean, display scale

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None


@dataclass
class Table:
    metric: str
    rows: list[str]
    columns: list[str]
    cells: dict = field(default_factory=dict)  # (row, column) -> Cell


def metrics_of(groups: list[Group], split: str = "test") -> list[str]:
    names = {k for g in groups for r in g.runs for k in (r.results.get(split) or {}) if k.startswith(f"{split}/")}
    order = {f"{split}/{m}": i for i, m in enumerate(METRIC_ORDER)}
    return sorted(names, key=lambda m: (order.get(m, len(order)), m))


def build_table(groups: list[Group], metric: str, baseline: str | None = None, n_resamples: int = RESAMPLES) -> Table:
    rows = list(dict.fromkeys(g.label for g in groups))
    columns = sorted({g.dataset for g in groups})
    table = Table(metric, rows, columns)
    for g in groups:
        values = seed_values(g, metric)
        if not values:
            continue
        cell = Cell([v * scale(metric) for v in values.values()], list(values))
        cell.ci = mean_ci(cell.values)
        base = baseline_for(g, groups, baseline) if baseline else None
        if base is not None:
            cell.test = compare(g, base, metric, n_resamples)
        table.cells[(g.label, g.dataset)] = cell
    adjust([c.test for c in table.cells.values() if c.test is not None])
    mark_best(table)
    return table


def mark_best(table: Table) -> None:
    """Bold the best mean of each column (ties at the shown precision all bold)."""
    pick = min if lower_is_better(table.metric) else max
    for column in table.columns:
        cells = [c for (_, col), c in table.cells.items() if col == column and c.mean is not None]
        if not cells:
            continue
        best = pick(round(c.mean, decimals(table.metric)) for c in cells)
        for c in cells:
            c.best = round(c.mean, decimals(table.metric)) == best


def fmt_p(p: float | None) -> str:
    return "-" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def p_equals(name: str, p: float | None) -> str:
    """'p=0.012', 'p<0.001'."""
    shown = fmt_p(p)
    return f"{name}{shown}" if shown.startswith("<") else f"{name}={shown}"


def format_value(cell: Cell, metric: str) -> str:
    d = decimals(metric)
    return f"{cell.mean:.{d}f}" + (f" ± {cell.std:.{d}f}" if cell.std is not None else "")


def format_ci(ci: tuple[float, float] | None, metric: str) -> str:
    d = max(1, decimals(metric) - 1)
    return "-" if ci is None else f"[{ci[0]:.{d}f}, {ci[1]:.{d}f}]"


def cell_p(test: PairedTest | None) -> tuple[str, float, float | None] | None:
    """What a cell shows: ('p', bootstrap p, Holm) when there is a bootstrap, else ('p_t', t-test's)."""
    if test is None:
        return None
    if test.bootstrap is not None and test.bootstrap.p is not None:
        return "p", test.bootstrap.p, test.bootstrap.p_holm
    if test.p_ttest is not None:
        return "p_t", test.p_ttest, test.p_ttest_holm
    return None


def format_cell(cell: Cell | None, metric: str, bold: str = "**") -> str:
    if cell is None or cell.mean is None:
        return "-"
    text = format_value(cell, metric)
    if cell.best:
        text = f"{bold}{text}{bold}"
    if cell.ci is not None:
        text += f" {format_ci(cell.ci, metric)}"
    extra = f"n={cell.n}"
    shown = cell_p(cell.test)
    if shown is not None:
        extra += f"; {p_equals(shown[0], shown[1])}, Holm {fmt_p(shown[2])}"
    return f"{text} ({extra})"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table) -> str:
    lines = ["| model/peft | " + " | ".join(map(_md_escape, table.columns)) + " |",
             "| --- | " + " | ".join("---" for _ in table.columns) + " |"]
    for row in table.rows:
        cells = [format_cell(table.cells.get((row, col)), table.metric) for col in table.columns]
        lines.append(f"| {_md_escape(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(round(value, 10))


def to_csv(table: Table) -> str:
    """Wide, like the Markdown table: per dataset mean, std, n, best, the CI of the mean (display scale),
    the p-values raw and Holm-adjusted, and the bootstrap's δ with its CI (display scale)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    fields = ("mean", "std", "n", "best", "ci_low", "ci_high", "p_ttest", "p_ttest_holm", "p_wilcoxon",
              "p_wilcoxon_holm", "p_bootstrap", "p_bootstrap_holm", "delta_bootstrap", "delta_ci_low", "delta_ci_high")
    writer.writerow(["row"] + [f"{col} {f}" for col in table.columns for f in fields])
    for row in table.rows:
        line = [row]
        for col in table.columns:
            c = table.cells.get((row, col))
            if c is None:
                line += [""] * len(fields)
                continue
            t = c.test
            b = t.bootstrap if t else None
            k = scale(table.metric)
            line += [_num(c.mean), _num(c.std), c.n, int(c.best), _num(c.ci[0] if c.ci else None),
                     _num(c.ci[1] if c.ci else None)]
            line += [_num(getattr(t, name, None)) for name in ("p_ttest", "p_ttest_holm", "p_wilcoxon", "p_wilcoxon_holm")]
            line += [_num(getattr(b, name, None)) for name in ("p", "p_holm")]
            line += [_num(None if getattr(b, name, None) is None else getattr(b, name) * k)
                     for name in ("delta", "ci_low", "ci_high")]
        writer.writerow(line)
    return out.getvalue()


def _tex(text: str) -> str:
    for char in "\\&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text


def to_latex(table: Table) -> str:
    """The studies' style: $mean^{\\pm std}$, best per column in bold."""
    d = decimals(table.metric)
    lines = ["\\begin{table}[t]", "\\centering", "\\begin{tabular}{l" + "c" * len(table.columns) + "}",
             "\\toprule", " & " + " & ".join(_tex(c) for c in table.columns) + " \\\\", "\\midrule"]
    for row in table.rows:
        cells = []
        for col in table.columns:
            c = table.cells.get((row, col))
            if c is None or c.mean is None:
                cells.append("-")
                continue
            mean = f"\\mathbf{{{c.mean:.{d}f}}}" if c.best else f"{c.mean:.{d}f}"
            cells.append(f"${mean}^{{\\pm {c.std:.{d}f}}}$" if c.std is not None else f"${mean}$")
        lines.append(_tex(row) + " & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}",
              f"\\caption{{{_tex(title(table.metric))}: mean$^{{\\pm\\mathrm{{std}}}}$ over seeds; best per column in bold.}}",
              "\\end{table}"]
    return "\n".join(lines) + "\n"
