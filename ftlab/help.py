"""`ftlab --help`: the whole command on one page, the subcommands first, then every config group
and its options (read from the configs the package ships, so it cannot drift from them)."""

from __future__ import annotations

import textwrap

from ftlab.config import group_options, groups

COMMANDS = (
    ("ftlab [overrides]", "train and test one run (model=..., peft=..., dataset=..., key=value)"),
    ("ftlab -m [overrides]", "a sweep: every combination of comma-separated values (seed=1,2,3 peft=full,lora)"),
    ("ftlab --cfg job [overrides]", "print the composed config after checking it; run nothing"),
    ("ftlab resume=<run dir>", "continue a stopped run exactly, in its own folder"),
    ("ftlab report <dir>... [--out D]", "tables (mean ± std over seeds), tests, curves over finished runs"),
    ("ftlab predict <run> --input F", "labels and probabilities of new texts (csv/tsv/jsonl, --text T)"),
    ("ftlab estimate [overrides]", "the training memory a config needs, without loading data or weights"),
    ("ftlab --help", "this page (Hydra's own flags: ftlab --hydra-help)"),
)

GROUP_NOTES = {
    "experiment": "presets reproducing a study's table (add -m for the whole table)",
    "peft": "the fine-tuning method",
    "hparams_search": "an Optuna search over this config, one command (README: Hyper-parameter search)",
}


def help_text(width: int = 100) -> str:
    lines = ["ftlab: fine-tuning studies, model x dataset x method x seed.", "", "Commands:"]
    pad = max(len(c) for c, _ in COMMANDS) + 2
    lines += [f"  {command:<{pad}}{what}" for command, what in COMMANDS]
    lines += ["", "Config groups (choose with group=option; the default run is model=minilm dataset=restaurant_sup "
              "peft=lora):"]
    for group in groups():
        options = ", ".join(group_options(group))
        note = f"  ({GROUP_NOTES[group]})" if group in GROUP_NOTES else ""
        lines += textwrap.wrap(f"{group}: {options}{note}", width=width, initial_indent="  ",
                               subsequent_indent="      ")
    lines += ["", "Any key: key=value (python -m ftlab --cfg job lists them all), e.g. optimizer.lr=1e-4 "
              "data.batch_size=16 trainer.max_epochs=3 seed=1.",
              "Clusters: -m hydra/launcher=slurm (or local); README.md, section Clusters."]
    return "\n".join(lines)
