"""A search folder's part of the report: its trials (parameters -> metric), the best trial, the
search space, and two figures: the metric per trial (with the best so far) and per parameter.

The trials are read from the study (ftlab/sweepers/study.py owns optuna.db); each row links the
trial's run folder, whose results.json the tables above already use.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from matplotlib.figure import Figure

from ftlab.report.plots import _save, slug
from ftlab.sweepers.study import Search


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def trials_csv(search: Search) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    space = search.space
    writer.writerow(["trial", "state", "value", *space, "run_dir"])
    for t in search.trials:
        writer.writerow([t.number, t.state, "" if t.value is None else repr(t.value),
                         *[t.params.get(k, "") for k in space], t.run_dir or ""])
    return out.getvalue()


def _is_log(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and len(values) > 1 and max(positive) / min(positive) >= 100


def trials_figure(search: Search, path: Path) -> Path | None:
    scored = [t for t in search.trials if t.value is not None]
    if not scored:
        return None
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([t.number for t in scored], [t.value for t in scored], "o", label="trial")
    best, xs, ys = None, [], []
    for t in scored:
        if best is None or (t.value > best if search.direction == "maximize" else t.value < best):
            best = t.value
        xs.append(t.number)
        ys.append(best)
    ax.step(xs, ys, where="post", label="best so far")
    failed = [t.number for t in search.trials if t.state != "complete"]
    for number in failed:
        ax.axvline(number, color="red", alpha=0.3, linewidth=1)
    ax.set_xlabel("trial" + (" (red: failed or interrupted)" if failed else ""))
    ax.set_ylabel(f"{search.monitor} ({search.direction})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def parameter_figure(search: Search, key: str, path: Path) -> Path | None:
    points = [(t.params[key], t.value) for t in search.trials if t.value is not None and key in t.params]
    if not points:
        return None
    fig = Figure(figsize=(5, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    xs = [p[0] for p in points]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
    if numeric:
        ax.plot(xs, [p[1] for p in points], "o")
        if _is_log([float(x) for x in xs]):
            ax.set_xscale("log")
    else:
        labels = sorted({str(x) for x in xs})
        ax.plot([labels.index(str(x)) for x in xs], [p[1] for p in points], "o")
        ax.set_xticks(range(len(labels)), labels)
    best = search.best
    if best is not None and key in best.params and numeric:
        ax.plot([best.params[key]], [best.value], "*", markersize=14, label=f"best (trial {best.number})")
        ax.legend(fontsize=8)
    ax.set_xlabel(key)
    ax.set_ylabel(search.monitor)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def search_files(search: Search, out: Path, plots: bool = True) -> dict[str, Path]:
    """Writes <out>/search/<folder>/trials.csv and the figures; returns name -> path (relative to out)."""
    where = out / "search" / slug(search.folder.name)
    where.mkdir(parents=True, exist_ok=True)
    files = {"trials.csv": where / "trials.csv"}
    files["trials.csv"].write_text(trials_csv(search))
    if plots:
        made = {"metric per trial": trials_figure(search, where / "trials.png")}
        made.update({key: parameter_figure(search, key, where / f"param_{slug(key)}.png") for key in search.space})
        files.update({name: path for name, path in made.items() if path})
    return {name: path.relative_to(out) for name, path in files.items()}


def search_markdown(search: Search, files: dict[str, Path]) -> list[str]:
    space = search.space
    states = [t.state for t in search.trials]
    lines = [f"## Search `{search.folder.name}`", "",
             f"{len(states)} trial(s): {states.count('complete')} complete, {states.count('failed')} failed, "
             f"{states.count('interrupted')} interrupted (run again later), {states.count('running')} running; "
             f"each trial's value is its best `{search.monitor}` ({search.direction}).", ""]
    if search.command:
        lines += ["Search command (the space and the fixed overrides):", "",
                  "```", "ftlab -m " + " ".join(search.command), "```", ""]
    best = search.best
    if best is not None:
        lines += [f"**Best trial {best.number}**: {search.monitor} {_fmt(best.value)}; "
                  + ", ".join(f"`{k}={_fmt(v)}`" for k, v in best.params.items()), ""]
    lines += ["| trial | state | value | " + " | ".join(space) + " | run |",
              "| --- | --- | --- | " + " | ".join("---" for _ in space) + " | --- |"]
    for t in search.trials:
        run = "-" if t.run_dir is None else f"`{Path(t.run_dir).name}`"
        mark = " **(best)**" if best is not None and t.number == best.number else ""
        lines.append(f"| {t.number}{mark} | {t.state} | {_fmt(t.value)} | "
                     + " | ".join(_fmt(t.params.get(k)) for k in space) + f" | {run} |")
    lines.append("")
    for name, path in files.items():
        link = path.as_posix().replace(" ", "%20")
        lines.append(f"![{name}]({link})" if link.endswith(".png") else f"[{name}]({link})")
    return lines + [""]


def search_summary(search: Search) -> str:
    best = search.best
    states = [t.state for t in search.trials]
    head = (f"search {search.folder.name}: {len(states)} trial(s), {states.count('complete')} complete, "
            f"{states.count('failed')} failed, {states.count('interrupted')} interrupted")
    if best is None:
        return head + "; no trial completed"
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
    value = _fmt(best.value) if best.value is not None and math.isfinite(best.value) else "-"
    return head + f"; best trial {best.number}: {value} ({params})"
