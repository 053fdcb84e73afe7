"""A trained run's model as a classifier: `ftlab.load(run_dir)` and what `ftlab predict` runs.

    clf = ftlab.load("outputs/runs/2026-12-01/10-00-00-000000_minilm_acl_sup_lora_s42")
    clf.labels                                   # ["background", "compares", ...]
    clf.predict("We extend the method of ...")   # [{"text": ..., "label": ..., "label_id": ..., "probs": {...}}]
    clf.model, clf.tokenizer                     # the transformers / peft model (eval mode) and its tokenizer

The run's saved model (`model/`, or `export/` where `model/` is missing or its base was randomly
initialised and never saved) is loaded by `ftlab.saved_model.load_classifier`, so every method loads
(peft's, ftlab's native adapters, QLoRA). Texts are tokenized as the run's datamodule did (pairs as
pairs, truncated at its `data.max_length`) and batched by length with dynamic padding, so a run's
test texts get the probabilities in its `predictions/test.jsonl`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ftlab.errors import UserError

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


# ---- the run ---------------------------------------------------------------------------------
def saved_folder(run_dir: Path) -> Path:
    """The folder to load: a completed run's model/ (export/ where model/ cannot be loaded on its own)."""
    from ftlab.results import COMPLETED, MISSING, load
    from ftlab.saved_model import RECORD_FILE

    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not ((run_dir / "results.json").exists() or (run_dir / ".hydra").is_dir()):
        raise UserError(f"{run_dir} is not a run folder (no results.json, no .hydra/)",
                        "pass the folder of a run: the one its results.json is in")
    record = load(run_dir)
    if record.status == MISSING:
        raise UserError(f"{run_dir} has no results.json: still running, or killed",
                        "wait for it to finish, or resume it: ftlab resume=<run dir>")
    if record.status != COMPLETED:
        raise UserError(f"{run_dir} did not complete ({record.status}: {record.reason})",
                        "predict with a completed run; train it again, or resume it: ftlab resume=<run dir>")
    model, export = run_dir / "model", run_dir / "export"
    if model.is_dir():
        try:
            base = json.loads((model / RECORD_FILE).read_text()).get("base") or {}
        except (OSError, ValueError):
            base = {}
        if "random" in base and export.is_dir():  # an adapter on a base that was never saved
            return export
        return model
    if export.is_dir():
        return export
    raise UserError(f"{run_dir} has no model/ (run with save.model=false?)",
                    "train it again with save.model=true (the default)")


def max_length_of(run_dir: Path, folder: Path) -> int:
    """The run's data.max_length: as its saved model records it, else its .hydra/config.yaml."""
    from ftlab.saved_model import RECORD_FILE

    try:
        return int(json.loads((folder / RECORD_FILE).read_text())["max_length"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from omegaconf import OmegaConf

    try:
        return int(OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml").data.max_length)
    except Exception:
        raise UserError(f"{run_dir}: neither {folder / RECORD_FILE} nor .hydra/config.yaml says data.max_length",
                        "predict with a run saved by this ftlab") from None


def trained_on_pairs(run_dir: Path) -> bool | None:
    """Whether the run's examples were text pairs (its predictions say it), None when unknown."""
    from ftlab import predictions

    try:
        with predictions.path(run_dir, "test").open(encoding="utf-8") as f:
            return "text_pair" in json.loads(f.readline())
    except (OSError, ValueError):
        return None


def task_of_folder(folder: Path, model):
    from ftlab.data.task import classification
    from ftlab.saved_model import read_record, task_of

    try:
        return task_of(read_record(folder))
    except UserError:  # a plain transformers folder: its config's labels
        return classification([model.config.id2label[i] for i in range(model.config.num_labels)])


# ---- the classifier ----------------------------------------------------------------------------
class Classifier:
    """A run's trained model with its tokenizer, labels and input length (`load` builds it)."""

    def __init__(self, model, tokenizer, task, max_length: int, pairs: bool | None = None, folder: Path | None = None,
                 precision: str = "32-true"):
        self.model, self.tokenizer, self.task = model, tokenizer, task
        self.max_length, self.pairs, self.folder = max_length, pairs, folder
        self.precision = precision  # the run's trainer.precision: bf16-mixed runs predict under bf16 autocast

    @property
    def labels(self) -> list[str]:
        return list(self.task.label_names)

    def __repr__(self) -> str:
        return f"Classifier({self.folder}, labels={self.labels}, max_length={self.max_length})"

    def logits(self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None, batch_size: int = 32,
               progress: bool = False) -> list:
        """Each input's logits (a list of floats), in input order; tokenized and padded as training did.
        `progress`: a bar on stderr when it is a terminal and there are more than 10 batches."""
        return self._forward(*_checked(texts, text_pairs, self.pairs, batch_size), batch_size, progress)

    def _forward(self, texts: list[str], text_pairs: list[str] | None, batch_size: int, progress: bool) -> list:
        import torch
        from tqdm.auto import tqdm

        from ftlab.data.batching import DynamicPaddingCollator
        from ftlab.models.backbone import is_decoder
        from ftlab.precision import autocast

        tokenizer = self.tokenizer
        enc = tokenizer(texts, text_pairs, truncation=True, max_length=self.max_length)
        keys = [k for k in MODEL_INPUTS if k in enc]
        examples = [{**{k: enc[k][i] for k in keys}, "labels": 0} for i in range(len(texts))]
        collate = DynamicPaddingCollator(tokenizer.pad_token_id, tokenizer.padding_side)
        decoder = is_decoder(self.model.config)
        inputs = ("input_ids", "attention_mask") if decoder else MODEL_INPUTS
        order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
        out: list = [None] * len(examples)
        starts = range(0, len(order), batch_size)
        bar = tqdm(starts, desc="predicting", unit="batch", disable=None if progress and len(starts) > 10 else True)
        with torch.inference_mode():
            for start in bar:
                chunk = order[start : start + batch_size]
                batch = collate([examples[i] for i in chunk])
                feed = {k: batch[k] for k in inputs if k in batch}
                if decoder and tokenizer.padding_side == "left":
                    feed["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                with autocast(self.precision, self.model.device.type):
                    logits = self.model(**feed).logits.float()
                for i, row in zip(chunk, logits.tolist()):
                    out[i] = row
        return out

    def predict(self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None,
                batch_size: int = 32, progress: bool = False) -> list[dict]:
        """Per input, in order: the text(s), the predicted `label` name(s), `label_id`(s) and every
        label's probability in `probs` (`value` for regression). One text or a list of them."""
        texts, text_pairs = _checked(texts, text_pairs, self.pairs, batch_size)
        return rows(self.task, texts, text_pairs, self._forward(texts, text_pairs, batch_size, progress))


def _checked(texts, pairs, need_pair: bool | None, batch_size: int) -> tuple[list, list | None]:
    """The inputs as lists (one text or a list of them), checked, before anything is tokenized."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    pairs = [pairs] if isinstance(pairs, str) else pairs
    if not all(isinstance(t, str) for t in texts):
        raise UserError("texts must be strings", "pass a string or a list of strings")
    if pairs is not None:
        pairs = list(pairs)
        if len(pairs) != len(texts) or not all(isinstance(t, str) for t in pairs):
            raise UserError(f"{len(pairs)} text pairs for {len(texts)} texts", "give one second text per text")
    elif need_pair:
        raise UserError("the run was trained on text pairs: each text needs its second text",
                        "pass text_pairs (ftlab predict: --text-pair, or a text_pair column)")
    if batch_size < 1:
        raise UserError(f"batch size {batch_size} must be positive", "use e.g. 32")
    return texts, pairs


def rows(task, texts: list[str], pairs: list[str] | None, logits: list) -> list[dict]:
    import torch

    from ftlab.data.task import TaskType

    names = list(task.label_names)
    out = []
    for i, row in enumerate(logits):
        item = {"text": texts[i], **({"text_pair": pairs[i]} if pairs is not None else {})}
        scores = torch.tensor(row)
        if task.task_type is TaskType.REGRESSION:
            item["value"] = float(scores[0])
        elif task.task_type is TaskType.MULTI_LABEL:
            probs = torch.sigmoid(scores).tolist()
            ids = [j for j, p in enumerate(probs) if p > task.threshold]
            item.update(label=[names[j] for j in ids], label_id=ids, probs={n: round(p, 6) for n, p in zip(names, probs)})
        else:
            probs = torch.softmax(scores, -1).tolist()
            j = int(scores.argmax())
            item.update(label=names[j], label_id=j, probs={n: round(p, 6) for n, p in zip(names, probs)})
        out.append(item)
    return out


def run_precision(run_dir: Path) -> str:
    """The trainer.precision the run trained and tested in (results.json's resolved config)."""
    try:
        return str(json.loads((Path(run_dir) / "results.json").read_text())["config"]["trainer"]["precision"])
    except (OSError, ValueError, KeyError, TypeError):
        return "32-true"


def load(run_dir: str | Path, threads: int | None = None) -> Classifier:
    """The trained classifier of a completed run folder (errors name the fix: `UserError`), predicting
    in the precision the run was tested in."""
    run_dir = Path(run_dir)
    folder = saved_folder(run_dir)
    max_length = max_length_of(run_dir, folder)
    if threads:
        import torch

        torch.set_num_threads(threads)
    from ftlab.saved_model import load_classifier

    model, tokenizer = load_classifier(folder)
    return Classifier(model, tokenizer, task_of_folder(folder, model), max_length, trained_on_pairs(run_dir), folder,
                      run_precision(run_dir))
