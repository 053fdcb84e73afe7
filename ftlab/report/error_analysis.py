"""Error analysis of each group: `<report>/groups/<label>__<dataset>.md`, linked from report.md.

For single-label classification: the per-class precision / recall / F1 / support (mean ± std over
seeds, results.json `test_per_class`), the label pairs most confused over the seeds (the runs'
`test_confusion_matrix`, rows true, columns predicted, summed), and the test examples every seed gets
wrong (each run's predictions/test.jsonl), the most confidently wrong first. Multi-label groups get the
per-label F1 (`test_per_label_f1`) only; regression groups no page.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from ftlab import predictions
from ftlab.errors import UserError
from ftlab.report.collect import Collection
from ftlab.report.document import display_path
from ftlab.report.grouping import Group
from ftlab.report.plots import slug

TOP_PAIRS = 10
TOP_EXAMPLES = 20
TEXT_CHARS = 200


def md_text(text, limit: int = TEXT_CHARS) -> str:
    """One table cell of free text: whitespace (newlines) collapsed, cut at `limit`, Markdown escaped."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", text)


def task_type(group: Group) -> str:
    return str((group.runs[0].results.get("task") or {}).get("task_type", "single_label"))


def label_names(group: Group) -> list[str]:
    return [str(n) for n in (group.runs[0].results.get("task") or {}).get("label_names") or []]


def _name(names: list[str], i: int) -> str:
    return names[i] if 0 <= i < len(names) else str(i)


def _mean_std(values: list[float], k: float = 100.0, d: int = 2) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values) * k
    return f"{mean:.{d}f}" + (f" ± {statistics.stdev(values) * k:.{d}f}" if len(values) > 1 else "")


def per_class_section(group: Group) -> list[str]:
    """Per class mean ± std over the seeds that report it; [] when no run has per-class scores."""
    names = label_names(group)
    single = [r.results.get("test_per_class") for r in group.runs if isinstance(r.results.get("test_per_class"), dict)]
    multi = [r.results.get("test_per_label_f1") for r in group.runs if isinstance(r.results.get("test_per_label_f1"), dict)]
    if single:
        order = list(dict.fromkeys([n for n in names if any(n in s for s in single)] + [n for s in single for n in s]))
        lines = [f"## Per class (test, %, mean ± std over {len(single)} seed(s))", "",
                 "| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
        for name in order:
            scores = [s[name] for s in single if isinstance(s.get(name), dict)]
            cols = [_mean_std([float(x[key]) for x in scores if x.get(key) is not None]) for key in ("precision", "recall", "f1")]
            support = [x["support"] for x in scores if x.get("support") is not None]
            shown = str(support[0]) if support and len(set(support)) == 1 else _mean_std(support, 1.0, 1)
            lines.append(f"| {md_text(name)} | " + " | ".join(cols) + f" | {shown} |")
        return lines + [""]
    if multi:
        order = list(dict.fromkeys([n for n in names if any(n in m for m in multi)] + [n for m in multi for n in m]))
        lines = [f"## Per label (test F1, %, mean ± std over {len(multi)} seed(s))", "", "| label | F1 |", "| --- | --- |"]
        lines += [f"| {md_text(n)} | {_mean_std([float(m[n]) for m in multi if m.get(n) is not None])} |" for n in order]
        return lines + [""]
    return []


def confused_pairs(group: Group, top: int = TOP_PAIRS) -> tuple[list[dict], str]:
    """The off-diagonal (true, predicted) pairs of the summed test confusion matrices, most frequent first."""
    matrices = [(r.seed, r.results.get("test_confusion_matrix")) for r in group.runs]
    matrices = [(s, m) for s, m in matrices if isinstance(m, list) and m]
    if not matrices:
        return [], "no run has a test confusion matrix in its results.json"
    k = len(matrices[0][1])
    if any(len(m) != k or any(len(row) != k for row in m) for _, m in matrices):
        return [], "the runs' confusion matrices differ in shape"
    total = [[sum(m[i][j] for _, m in matrices) for j in range(k)] for i in range(k)]
    pairs = sorted(((i, j) for i in range(k) for j in range(k) if i != j and total[i][j] > 0),
                   key=lambda ij: (-total[ij[0]][ij[1]], ij))
    out = [{"true": i, "pred": j, "count": total[i][j], "per_seed": [(s, m[i][j]) for s, m in matrices],
            "percent": 100.0 * total[i][j] / sum(total[i])} for i, j in pairs[:top]]
    note = "" if len(matrices) == len(group.runs) else f"summed over the {len(matrices)} of {len(group.runs)} runs with one"
    return out, note


def confused_section(group: Group) -> list[str]:
    pairs, note = confused_pairs(group)
    names = label_names(group)
    lines = [f"## Most confused pairs (test, top {TOP_PAIRS}, summed over seeds)", ""]
    if note:
        lines += [note[0].upper() + note[1:] + ".", ""]
    if not pairs:
        return lines + (["No confusions: every test example is on the diagonal.", ""] if not note else [])
    lines += ["| true | predicted | count | per seed | % of true class |", "| --- | --- | --- | --- | --- |"]
    for p in pairs:
        per_seed = ", ".join(f"s{s}: {c}" for s, c in p["per_seed"])
        lines.append(f"| {md_text(_name(names, p['true']))} | {md_text(_name(names, p['pred']))} | {p['count']} | "
                     f"{per_seed} | {p['percent']:.1f} |")
    return lines + [""]


def wrong_everywhere(group: Group) -> tuple[list[dict], int, str]:
    """(the test examples every seed gets wrong, most confident wrong prediction first; how many test
    examples; why not, when the predictions cannot say)."""
    loaded = []
    missing = []
    for run in group.runs:
        try:
            loaded.append(predictions.load(run.path, "test"))
        except UserError:
            missing.append(run.path.name)
    if missing:
        return [], 0, f"no predictions/test.jsonl in {', '.join(missing)} (runs write them since ftlab wrote predictions/)"
    rows = [{line["index"]: line for line in lines} for lines in loaded]
    if any(set(r) != set(rows[0]) for r in rows):
        return [], 0, "the runs' predictions are of different test examples"
    if any(not isinstance(line.get("label"), int) for line in rows[0].values()):
        return [], 0, "not single-label predictions"
    wrong = [i for i in rows[0] if all(r[i]["pred"] != r[i]["label"] for r in rows)]

    def mean_prob(i: int, which) -> float | None:
        probs = [r[i].get("probs") for r in rows]
        if any(not isinstance(p, list) or not 0 <= which(r[i]) < len(p) for p, r in zip(probs, rows)):
            return None
        return statistics.fmean(p[which(r[i])] for p, r in zip(probs, rows))

    out = []
    for i in wrong:
        first = rows[0][i]
        out.append({"index": i, "text": first.get("text"), "text_pair": first.get("text_pair"), "label": first["label"],
                    "preds": [(run.seed, r[i]["pred"]) for run, r in zip(group.runs, rows)],
                    "p_pred": mean_prob(i, lambda line: line["pred"]), "p_gold": mean_prob(i, lambda line: line["label"])})
    out.sort(key=lambda e: (-(e["p_pred"] if e["p_pred"] is not None else -1.0), e["index"]))
    return out, len(rows[0]), ""


def wrong_section(group: Group) -> list[str]:
    lines = ["## Test examples every seed gets wrong", ""]
    examples, n, why = wrong_everywhere(group)
    if why:
        return lines + [f"Not available: {why}.", ""]
    names = label_names(group)
    lines += [f"{len(examples)} of {n} test examples are wrong in every one of the {len(group.runs)} seed(s)"
              + (f"; the {min(TOP_EXAMPLES, len(examples))} most confidently wrong (mean probability of the "
                 "predicted label over seeds) first:" if examples else "."), ""]
    if not examples:
        return lines
    pair = any(e["text_pair"] is not None for e in examples)
    head = ["index", "text"] + (["text_pair"] if pair else []) + ["gold", "predicted (per seed)", "p(pred)", "p(gold)"]
    lines += ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    prob = (lambda p: "-" if p is None else f"{p:.3f}")  # noqa: E731
    for e in examples[:TOP_EXAMPLES]:
        cells = [str(e["index"]), md_text(e["text"]) if e["text"] is not None else "-"]
        if pair:
            cells.append(md_text(e["text_pair"]) if e["text_pair"] is not None else "-")
        cells += [md_text(_name(names, e["label"])), ", ".join(f"s{s}: {md_text(_name(names, p))}" for s, p in e["preds"]),
                  prob(e["p_pred"]), prob(e["p_gold"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def group_page(group: Group, roots: list[Path]) -> str | None:
    """The page's Markdown; None for a group with nothing to show (regression)."""
    kind = task_type(group)
    per_class = per_class_section(group)
    if kind != "single_label" and not per_class:
        return None
    runs = ", ".join(f"s{r.seed}: `{display_path(r.path, roots)}`" for r in group.runs)
    lines = [f"# Error analysis: {md_text(group.label)} on {md_text(group.dataset)}", "",
             f"[back to the report](../report.md) · {len(group.runs)} seed(s): {runs}", ""]
    lines += per_class or ["No per-class scores in the runs' results.json.", ""]
    if kind == "single_label":
        lines += confused_section(group) + wrong_section(group)
    return "\n".join(lines)


def page_path(group: Group) -> Path:
    return Path("groups") / f"{slug(group.label)}__{slug(group.dataset)}.md"


def write_pages(coll: Collection, out: Path) -> dict:
    """(row label, dataset) -> the page written, relative to `out`."""
    pages = {}
    for group in coll.groups:
        text = group_page(group, coll.roots)
        if text is None:
            continue
        target = out / page_path(group)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        pages[(group.label, group.dataset)] = page_path(group)
    return pages
