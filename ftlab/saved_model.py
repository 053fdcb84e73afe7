"""What a saved model folder (`<run>/model`, `<run>/export`) says about itself, and ftlab's loader of it.

Each folder gets `ftlab_model.json`: the labels (id2label, label2id, num_labels, problem_type), the
base model by a name that holds on another machine (ftlab/models/backbone.py `base_reference`), the
method and the backbone settings ftlab rebuilds it with. `export/` and full fine-tuning's `model/`
are plain transformers folders whose config.json carries the labels too, so `pipeline` and
`AutoModelForSequenceClassification` load them with no argument.

An adapter folder cannot carry them for peft: `AutoPeftModelForSequenceClassification.from_pretrained`
(peft 0.21.2, peft/auto.py) reads adapter_config.json and tokenizer_config.json there and builds the
base with `AutoModelForSequenceClassification.from_pretrained(base_model_name_or_path, **kwargs)`,
the caller's kwargs alone, so a base without the labels in its own config gets a 2-class head and
the saved one does not fit. A config.json beside the adapter would make transformers take the folder
for a complete model and look there for weights that an adapter folder does not hold. So the labels
go in ftlab_model.json and the model card's load lines pass them; `load_classifier` does it itself.

adapter_config.json's `base_model_name_or_path` is the hub id where there is one (a packaged copy of
a hub repository is named by that repository), else the package name, else the folder; never an
absolute path into a virtual environment. A model of `make install-models` (model=mpnet, gemma3,
qwen2) is recorded by its package name and the sha256 it is built from, and resolved to this
machine's cache folder (adapter_config.json names that folder: transformers knows no other name for
the dequantised GGUF models). `load_classifier` resolves the recorded base: the model package or the
installed package first (offline, the exact files), then the hub id, then the folder.
"""

from __future__ import annotations

import json
import logging
from importlib import metadata
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ftlab.data.task import TaskSpec, TaskType
from ftlab.errors import UserError

log = logging.getLogger(__name__)

RECORD_FILE = "ftlab_model.json"
FORMAT = 1
ADAPTER_CONFIG = "adapter_config.json"  # peft's
TRANSFORMERS_CONFIG = "config.json"
NATIVE_CONFIG = "ftlab_adapter.json"  # ftlab/peft/base.py CONFIG_FILE
# backbone settings that are this machine's paths: the base is recorded by reference, the tokenizer is saved
MACHINE_SETTINGS = ("pretrained", "tokenizer", "cache_dir", "_target_")


def folder_format(folder: Path) -> str:
    """`transformers` (a whole model), `peft` (an adapter in peft's format) or `ftlab` (a native method's weights)."""
    folder = Path(folder)
    if (folder / TRANSFORMERS_CONFIG).is_file():
        return "transformers"
    if (folder / ADAPTER_CONFIG).is_file():
        return "peft"
    if (folder / NATIVE_CONFIG).is_file():
        return "ftlab"
    raise UserError(f"{folder} holds no saved model (no {TRANSFORMERS_CONFIG}, {ADAPTER_CONFIG} or {NATIVE_CONFIG})",
                    "point at a run's model/ or export/ folder")


def label_config(task: TaskSpec, pad_token_id: int | None) -> dict:
    """The config arguments a classifier of this task is built with (ftlab/models/backbone.py `_config`):
    what a base model must be loaded with for the saved head to fit and to name its outputs."""
    config = {"num_labels": task.num_labels, "id2label": dict(enumerate(task.label_names)),
              "label2id": {n: i for i, n in enumerate(task.label_names)}, "problem_type": task.problem_type}
    if pad_token_id is not None:  # decoders pool the last token that is not padding: the pad id the tokenizer inserts
        config["pad_token_id"] = pad_token_id
    return config


def base_model_name(base: dict) -> str | None:
    """What adapter_config.json names the base by: loadable by transformers wherever the name holds
    (a model package's folder here: transformers knows no package names, and its cache path is the
    only name it loads; ftlab_model.json keeps the package's name)."""
    if "model_package" in base:
        return resolve_base(base)
    return base.get("hub") or base.get("package") or base.get("path")


def describe(folder: Path, cfg: DictConfig, base: dict, task: TaskSpec, tokenizer, method: str) -> dict:
    """Write `ftlab_model.json` into a saved folder and point peft's adapter_config.json at the base's
    portable name; returns the record."""
    folder = Path(folder)
    record = {
        "format": FORMAT,
        "ftlab_version": _version("ftlab"),
        "folder_format": folder_format(folder),
        "method": method,
        "base": base,
        "base_model_name_or_path": base_model_name(base),
        "task": task.to_dict(),
        **label_config(task, tokenizer.pad_token_id),
        "max_length": int(cfg.data.max_length),
        "peft": OmegaConf.to_container(cfg.peft, resolve=True),
        "backbone": {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items()
                     if k not in MACHINE_SETTINGS},
        "backbone_target": cfg.model.get("_target_"),
    }
    (folder / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if record["folder_format"] == "peft":
        point_adapter_at(folder, record["base_model_name_or_path"], base.get("revision"))
    return record


def point_adapter_at(folder: Path, name: str | None, revision: str | None) -> None:
    """Rewrite the base peft recorded (the model's name_or_path: a venv path for a packaged model).
    Done after peft's own save, which checks the base it names for a config.json (on the hub, when a
    hub id: a warning offline)."""
    path = Path(folder) / ADAPTER_CONFIG
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = name
    config["revision"] = revision
    path.write_text(json.dumps(config, indent=2, sort_keys=True))


def read_record(folder: Path) -> dict:
    path = Path(folder) / RECORD_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no {RECORD_FILE} in {folder}: not saved by this ftlab",
                        "load it with transformers / peft directly, or save it again with a run") from None


def resolve_base(base: dict) -> str:
    """The recorded base as `from_pretrained` takes it here: the installed package's folder, else the
    hub id, else the folder as recorded."""
    from ftlab.models.backbone import package_dir  # imports transformers
    from ftlab.models.model_packages import PACKAGES, model_folder

    if "model_package" in base:  # installed here or not, the error names the install command
        name = base["model_package"]
        if name in PACKAGES and base.get("sha256") not in (None, PACKAGES[name].sha256):
            raise UserError(f"the run was trained on another build of model package {name!r} (sha256 "
                            f"{base['sha256'][:12]}…, this ftlab installs {PACKAGES[name].sha256[:12]}…)",
                            "load it with the ftlab version that trained it")
        return model_folder(name)
    if "package" in base:
        try:
            return str(Path(package_dir(base["package"])) / base.get("path_in_package", "."))
        except UserError:
            if not base.get("hub"):
                raise
            log.info("package %s is not installed: loading its hub copy %s", base["package"], base["hub"])
    if base.get("hub"):
        return base["hub"]
    if "path" in base:
        if not Path(base["path"]).exists():
            raise UserError(f"the base model folder {base['path']} is not on this machine",
                            f"copy it there, or load {RECORD_FILE}'s adapter onto your copy with PeftModel")
        return base["path"]
    raise UserError(f"the base model was randomly initialised ({base.get('random')}) and is not saved",
                    "load <run>/export (save.export=true), which holds the whole model")


def task_of(record: dict) -> TaskSpec:
    t = record["task"]
    return TaskSpec(TaskType(t["task_type"]), tuple(t["label_names"]), tuple(t.get("extra_metrics", ())),
                    t["monitor"], t["monitor_mode"], t.get("threshold", 0.5))


def load_classifier(folder: str | Path):
    """(model, tokenizer) of a saved folder, in eval mode, with no other argument: a whole model
    through transformers; an adapter (peft's or a native method's) on its recorded base, built by
    ftlab's own Backbone and injector as in training (labels, pad id, quantisation alike)."""
    from hydra.utils import get_class, instantiate
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if folder_format(folder) == "transformers":
        return AutoModelForSequenceClassification.from_pretrained(folder).eval(), tokenizer
    record = read_record(folder)
    backbone_class = get_class(record.get("backbone_target") or "ftlab.models.backbone.Backbone")
    backbone = backbone_class(**{**record["backbone"], "pretrained": resolve_base(record["base"]),
                                 "tokenizer": str(folder), "gradient_checkpointing": False})
    method = dict(record["peft"])
    if method.pop("use_dora", False):  # saved before DoRA was a method of its own (LoraInjector, use_dora: true)
        method["_target_"] = "ftlab.peft.lora.DoraInjector"
    injector = instantiate(method)
    built = backbone.build(task_of(record), tokenizer, **injector.load_kwargs())
    model = injector.load_pretrained(injector.inject(built.model, built.new_parameters), folder)
    return model.eval(), tokenizer


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
