"""The HF-peft-backed methods (dora, ia3, prefix, prompt, qlora) on every tiny architecture: what
trains, what is saved, what merges, what is refused at inject time, and parameter counts."""

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForSequenceClassification

from ftlab.config import build
from ftlab.data.task import classification
from ftlab.errors import UserError

CONF = Path(__file__).resolve().parents[2] / "ftlab" / "conf" / "peft"
TASK = classification(["a", "b", "c"])
ARCHS = ["tiny_bert", "tiny_roberta", "tiny_distilbert", "tiny_llama"]
# method x architecture that peft 0.21.2 + transformers 5.23 cannot do, refused at inject
REFUSED = {
    ("prefix", "tiny_distilbert"): "past key values",  # DistilBERT takes no past_key_values
    ("prompt", "tiny_llama"): "padding",  # embeddings in, so the last-token head reads padding
}
OWN = {"dora": "lora_", "ia3": "ia3_l", "prefix": "prompt_", "prompt": "prompt_"}  # the method's own weights
WORKING = [(m, a) for m in ("dora", "ia3", "prefix", "prompt") for a in ARCHS if (m, a) not in REFUSED]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are too small to gain from a second thread, and on a shared machine each op
    waits for a busy second core (measured: 13 ms instead of 1.2 ms per 384x384 matmul)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make(compose, arch, method, *overrides):
    cfg = compose(f"model={arch}", f"peft={method}", *overrides)
    backbone = build(cfg, "model")
    tok = backbone.load_tokenizer()
    return backbone, tok, build(cfg, "peft")


def random_batch(model, n=4, length=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    vocab, pad = model.config.vocab_size, model.config.pad_token_id
    ids = torch.randint(1000, vocab, (n, length), generator=gen)
    mask = torch.ones_like(ids)
    mask[n // 2:, length // 2:] = 0  # right padding, as the datamodule pads
    ids[mask == 0] = pad
    return {"input_ids": ids, "attention_mask": mask}, torch.randint(0, TASK.num_labels, (n,), generator=gen)


def train_steps(model, steps=2, lr=1e-2):
    """Two AdamW steps (LoRA's B starts at 0, so A moves only from the second)."""
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    batch, labels = random_batch(model)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(**batch).logits.float(), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def logits(model, seed=1):
    model.eval()
    return model(**random_batch(model, seed=seed)[0]).logits.float()


@pytest.mark.parametrize("method,arch", WORKING)
def test_trains_saves_reloads_and_merges(compose, tmp_path, method, arch):
    backbone, tok, injector = make(compose, arch, method)
    built = backbone.build(TASK, tok)
    fresh = copy.deepcopy(built.model)
    model = injector.inject(built.model, built.new_parameters)

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(torch.isfinite(torch.tensor(train_steps(model))))
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed == trainable  # every trainable parameter moved, no frozen one
    head = {n for n in trainable if "modules_to_save" in n}
    assert head and {n.split(".modules_to_save")[0].rsplit(".", 1)[-1] for n in head} <= {"classifier", "pre_classifier", "score"}
    assert all("modules_to_save" in n or OWN[method] in n for n in trainable)
    report = injector.trainable_report(model)
    assert (report.trainable, report.total) == model.get_nb_trainable_parameters()

    # PEFT's own format: PeftModel.from_pretrained on the untouched base gives the trained model
    ref = logits(model)
    injector.save_pretrained(model, tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (tmp_path / "adapter").iterdir()}
    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert len(saved) == len(trainable)  # the method's weights and the head, nothing else
    assert len([k for k in saved if OWN[method] not in k]) == len(head)
    reloaded = PeftModel.from_pretrained(copy.deepcopy(fresh), str(tmp_path / "adapter"))
    torch.testing.assert_close(logits(reloaded), ref, atol=1e-6, rtol=0)
    # ... and so does ftlab's own load path on a freshly injected copy
    again = injector.load_pretrained(injector.inject(copy.deepcopy(fresh), set(built.new_parameters)), tmp_path / "adapter")
    torch.testing.assert_close(logits(again), ref, atol=1e-6, rtol=0)

    if injector.can_merge:
        injector.export(model, tmp_path / "export")
        exported = AutoModelForSequenceClassification.from_pretrained(tmp_path / "export")
        torch.testing.assert_close(logits(exported), ref, atol=1e-4, rtol=0)
    else:
        with pytest.raises(UserError, match="cannot be merged"):
            injector.merge(model)


@pytest.mark.parametrize("method,arch", sorted(REFUSED))
def test_unfit_method_is_refused_at_inject(compose, method, arch):
    backbone, tok, injector = make(compose, arch, method)
    built = backbone.build(TASK, tok)
    with pytest.raises(UserError) as err:
        injector.inject(built.model, built.new_parameters)
    assert REFUSED[(method, arch)] in err.value.problem
    assert "distilbert" in err.value.problem or "llama" in err.value.problem  # names the model type
    assert "peft=lora" in err.value.fix  # says what to use instead


def test_ia3_settings_are_checked(compose):
    from ftlab.peft.ia3 import IA3Injector

    with pytest.raises(UserError, match="subset of `target_modules`"):  # (peft's IA3Config checks it)
        IA3Injector(target_modules=["key"], feedforward_modules=["output.dense"])
    with pytest.raises(UserError, match="set both"):
        IA3Injector(feedforward_modules=["output.dense"])
    backbone, tok, _ = make(compose, "tiny_bert", "ia3")
    built = backbone.build(TASK, tok)
    with pytest.raises(UserError, match="does not match"):
        IA3Injector(target_modules=["nope"]).inject(built.model, built.new_parameters)


# ---- parameter counts at base-model shapes ------------------------------------------------------

SHAPES = {
    "bert-base": dict(model_type="bert"),  # AutoConfig defaults are bert-base-uncased's
    "roberta-base": dict(model_type="roberta", vocab_size=50265, max_position_embeddings=514, type_vocab_size=1),
}
# head: BERT 768*2+2 = 1,538; RoBERTa dense 768*768+768 + out_proj 1,538 = 592,130
# dora: 12 layers x (query, value) x (A 8x768 + B 768x8 + magnitude 768) = 313,344
# ia3:  12 x (key 768 + value 768 + attention.output.dense in 768 + output.dense in 3072) = 64,512
# prefix: 20 tokens x 12 layers x (key, value) x 768 = 368,640;  prompt: 20 x 768 = 15,360
# lora (r 8): 12 layers x (query, value) x (A 8x768 + B 768x8) = 294,912
EXPECTED = {
    ("bert-base", "lora"): 296_450, ("roberta-base", "lora"): 887_042,
    ("bert-base", "dora"): 314_882, ("bert-base", "ia3"): 66_050,
    ("bert-base", "prefix"): 370_178, ("bert-base", "prompt"): 16_898,
    ("roberta-base", "dora"): 905_474, ("roberta-base", "ia3"): 656_642,
    ("roberta-base", "prefix"): 960_770, ("roberta-base", "prompt"): 607_490,
}


@pytest.fixture(scope="module")
def base_models():
    """Each base-size model built once (random weights); tests inject into copies."""
    torch.manual_seed(0)
    out = {}
    for name, shape in SHAPES.items():
        shape = dict(shape)
        config = AutoConfig.for_model(shape.pop("model_type"), num_labels=2, **shape)
        model = AutoModelForSequenceClassification.from_config(config)
        out[name] = (model, {n for n, _ in model.named_parameters() if not n.startswith(model.base_model_prefix + ".")})
    return out


@pytest.mark.parametrize("shape,method", sorted(EXPECTED))
def test_trainable_parameter_counts(base_models, shape, method):
    model, new = base_models[shape]
    injector = instantiate(OmegaConf.load(CONF / f"{method}.yaml").peft)  # the shipped defaults
    injected = injector.inject(copy.deepcopy(model), set(new))
    report = injector.trainable_report(injected)
    assert report.trainable == EXPECTED[(shape, method)]
    assert (report.trainable, report.total) == injected.get_nb_trainable_parameters()


@pytest.mark.parametrize("shape,total", [("bert-base", 109_483_778), ("roberta-base", 124_647_170)])
def test_full_fine_tuning_trains_every_weight(base_models, shape, total):
    model, new = base_models[shape]
    injector = instantiate(OmegaConf.load(CONF / "full.yaml").peft)
    report = injector.trainable_report(injector.inject(copy.deepcopy(model), set(new)))
    assert report.trainable == report.total == total


# ---- QLoRA --------------------------------------------------------------------------------------

def test_qlora_without_bitsandbytes_says_how_to_install(compose, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails as if not installed
    with pytest.raises(UserError) as err:
        build(compose("peft=qlora"), "peft")
    assert "bitsandbytes" in err.value.problem and "pip install 'ftlab[quant]'" in err.value.fix


def test_qlora_settings_and_refusals_before_loading(compose):
    backbone, tok, injector = make(compose, "tiny_bert", "qlora")
    quant = injector.load_kwargs()["quantization_config"]
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4" and quant.bnb_4bit_use_double_quant
    gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert quant.bnb_4bit_compute_dtype == (torch.bfloat16 if gpu_bf16 else torch.float32)
    assert {"classifier", "pre_classifier", "score"} <= set(quant.llm_int8_skip_modules)
    assert json.loads(json.dumps(injector.hparams()))["r"] == 8
    with pytest.raises(UserError, match="pretrained"):  # quantisation needs from_pretrained
        backbone.build(TASK, tok, **injector.load_kwargs())
    with pytest.raises(UserError, match="compute_dtype"):
        make(compose, "tiny_bert", "qlora", "peft.compute_dtype=int8")


@pytest.mark.parametrize("flags, chosen, warned", [({"avx2"}, "bfloat16", True), ({"avx2"}, "float32", False),
                                                   ({"avx2"}, None, False), ({"amx_bf16"}, "bfloat16", False)])
def test_qlora_bf16_compute_on_a_cpu_that_emulates_it_is_kept_with_a_warning(compose, monkeypatch, caplog,
                                                                             flags, chosen, warned):
    from ftlab import precision

    if torch.cuda.is_available():
        pytest.skip("the warning is about CPUs")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    _, _, injector = make(compose, "tiny_bert", "qlora", *([f"peft.compute_dtype={chosen}"] if chosen else []))
    with caplog.at_level("WARNING", logger="ftlab.peft.qlora"):
        quant = injector.load_kwargs()["quantization_config"]
    assert quant.bnb_4bit_compute_dtype == (torch.bfloat16 if chosen == "bfloat16" else torch.float32)
    assert ("peft.compute_dtype=bfloat16 on a CPU without" in caplog.text) == warned, caplog.text


def saved_tiny(compose, arch, directory):
    """A tiny random backbone saved without a head, as a pretrained checkpoint is."""
    backbone, tok, _ = make(compose, arch, "lora")
    backbone.build(TASK, tok).model.base_model.save_pretrained(directory)
    return str(directory)


@pytest.mark.parametrize("arch", ARCHS)
def test_qlora_trains_on_cpu_and_exports_float(compose, tmp_path, arch):
    import bitsandbytes as bnb

    path = saved_tiny(compose, arch, tmp_path / "base")
    backbone, tok, injector = make(compose, arch, "qlora", f"model.pretrained={path}")
    built = backbone.build(TASK, tok, **injector.load_kwargs())
    model = injector.inject(built.model, built.new_parameters)

    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    quantized = {n: m for n, m in linears.items() if isinstance(m, bnb.nn.Linear4bit)}
    assert quantized and not any("modules_to_save" in n or "original_module" in n for n in quantized)
    assert all(m.weight.quant_state.shape == (m.out_features, m.in_features) for m in quantized.values())
    heads = {n: m for n, m in linears.items() if ".modules_to_save." in n}  # the trained copy of the head
    assert heads and all(type(m) is torch.nn.Linear and m.weight.dtype == torch.float32 for m in heads.values())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or ".modules_to_save." in n for n in trainable)
    report = injector.trainable_report(model)  # 4-bit weights at their logical size, as peft counts them
    assert (report.trainable, report.total) == model.get_nb_trainable_parameters()

    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert all(torch.isfinite(torch.tensor(train_steps(model))))
    logits(model)  # a validation pass (eval, no grad) must not break the next training step
    model.train()
    batch, labels = random_batch(model)
    torch.nn.functional.cross_entropy(model(**batch).logits, labels).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_A" in n)
    assert all(torch.equal(frozen[n], p.detach()) for n, p in model.named_parameters() if n in frozen)

    ref = logits(model)
    injector.export(model, tmp_path / "export")  # dequantised + merged: a plain float model
    exported = AutoModelForSequenceClassification.from_pretrained(tmp_path / "export")
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in exported.modules())
    assert getattr(exported.config, "quantization_config", None) is None
    torch.testing.assert_close(logits(exported), ref, atol=1e-4, rtol=0)


def test_qlora_unskipped_head_is_refused_at_inject(compose, tmp_path):
    path = saved_tiny(compose, "tiny_bert", tmp_path / "base")
    backbone, tok, injector = make(compose, "tiny_bert", "qlora", f"model.pretrained={path}", "peft.skip_modules=[none]")
    built = backbone.build(TASK, tok, **injector.load_kwargs())  # loads "fine": the trap
    with pytest.raises(UserError, match="'classifier' was loaded in 4 bits"):
        injector.inject(built.model, built.new_parameters)


def test_qlora_whole_run_on_cpu_with_minilm(compose):
    from ftlab.run import run

    results = run(compose("model=minilm", "peft=qlora", "dataset=acl_sup", "threads=1"))
    assert results["status"] == "completed" and results["history"]
    assert all(torch.isfinite(torch.tensor(v)) for k, v in results["history"][-1].items() if "loss" in k)
    # LoRA 6 layers x (query, value) x (8x384 + 384x8) = 73,728 + head 384*6+6 (acl_sup: 6 labels) + MiniLM's
    # pooler 384*384+384, which trains with the head (model.train_pooler, conf/model/minilm.yaml);
    # total: MiniLM's 22,713,216 (4-bit ones at logical size) + LoRA + head and pooler and their frozen originals
    assert results["params"]["trainable"] == 73_728 + 2_310 + 147_840
    assert results["params"]["total"] == 22_713_216 + 73_728 + 2 * 2_310 + 147_840
