"""The native methods (houlsby, pfeiffer, bitfit, head, zeroshot) on every tiny backbone: what
trains, what an optimizer step touches, save/load, export, errors, and the parameter counts of the
bert-base / roberta-base shapes the studies report."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from ftlab.config import build
from ftlab.data.task import classification
from ftlab.errors import InvalidChoice, UserError
from ftlab.peft.adapters import HoulsbyInjector, PfeifferInjector
from ftlab.peft.base import CONFIG_FILE
from ftlab.peft.bitfit import BitFitInjector
from ftlab.peft.head import HeadOnly
from ftlab.peft.zeroshot import ZeroShot

MODELS = ["tiny_bert", "tiny_roberta", "tiny_distilbert", "tiny_llama"]
ADAPTERS = ["houlsby", "pfeiffer"]
METHODS = [*ADAPTERS, "bitfit", "head", "zeroshot"]
TASK = classification(["a", "b", "c"])
HIDDEN = 32  # every tiny model

# where the architecture search must put the adapters (per layer): attention output, FFN output
PLACES = {
    "tiny_bert": ("bert.encoder.layer.{i}.attention.output.dense", "bert.encoder.layer.{i}.output.dense"),
    "tiny_roberta": ("roberta.encoder.layer.{i}.attention.output.dense", "roberta.encoder.layer.{i}.output.dense"),
    "tiny_distilbert": ("distilbert.transformer.layer.{i}.attention.out_lin",
                        "distilbert.transformer.layer.{i}.ffn.lin2"),
    "tiny_llama": ("model.layers.{i}.self_attn.o_proj", "model.layers.{i}.mlp.down_proj"),
}
AD = ("down.weight", "down.bias", "up.weight", "up.bias")


def trains(model: str, method: str) -> bool:
    return method != "zeroshot" and not (method == "bitfit" and model == "tiny_llama")


def perturbed(make, model_name: str, method: str):
    """(injector, model): `method` injected into the tiny `model_name`, its trainable weights perturbed
    (as if trained); skips the pair bitfit refuses (a model without biases)."""
    if method == "bitfit" and model_name == "tiny_llama":
        pytest.skip("bitfit refuses a model without biases")
    injector, built = make(model_name, method)
    model = injector.inject(built.model, built.new_parameters)
    perturb_trainable(model)
    return injector, model


_backbones: dict[str, tuple] = {}


@pytest.fixture
def make(compose):
    """make(model, method, *overrides) -> (injector, fresh BuiltModel); the same seed builds the same weights."""

    def _make(model: str, method: str, *overrides: str, seed: int = 0):
        cfg = compose(f"model={model}", f"peft={method}", *overrides)
        if model not in _backbones:
            backbone = build(cfg, "model")
            _backbones[model] = (backbone, backbone.load_tokenizer())
        backbone, tok = _backbones[model]
        injector = build(cfg, "peft")
        torch.manual_seed(seed)
        built = backbone.build(TASK, tok)
        built.model.eval()
        return injector, built

    return _make


def batch(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 1000, (4, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch()).logits


def trainable(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def perturb_trainable(model: nn.Module) -> None:
    """Stand-in for training: move every trained weight (the adapters' zero up-projection too)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn(p.shape, generator=g))


def expected_trainable(model_name: str, method: str, model: nn.Module, new: set[str]) -> set[str]:
    layers = range(2)
    if method in ADAPTERS:
        places = PLACES[model_name] if method == "houlsby" else PLACES[model_name][1:]
        return new | {f"{p.format(i=i)}.adapter.{a}" for p in places for i in layers for a in AD}
    if method == "bitfit":
        return new | {n for n, _ in model.named_parameters() if n.endswith(".bias")}
    return set(new) if method == "head" else set()


# ---- what trains -------------------------------------------------------------------------------
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", METHODS)
def test_exactly_the_methods_parameters_train(make, model_name, method):
    injector, built = make(model_name, method)
    assert built.new_parameters  # the head
    if not trains(model_name, method) and method == "bitfit":
        with pytest.raises(UserError, match="BitFit needs bias terms; llama has none: use lora/ia3"):
            injector.inject(built.model, built.new_parameters)
        return
    model = injector.inject(built.model, built.new_parameters)
    assert trainable(model) == expected_trainable(model_name, method, model, built.new_parameters)
    report = injector.trainable_report(model)
    assert report.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (report.trainable == 0) == (method == "zeroshot")
    assert injector.trains == (method != "zeroshot")


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", ["houlsby", "pfeiffer", "bitfit", "head"])
def test_optimizer_steps_change_only_trainable_parameters(make, model_name, method):
    if not trains(model_name, method):
        pytest.skip("bitfit refuses a model without biases (tested above)")
    injector, built = make(model_name, method)
    model = injector.inject(built.model, built.new_parameters)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    labels = torch.tensor([0, 1, 2, 0])
    for _ in range(2):  # the adapters' down-projection gets its first gradient once `up` is non-zero
        opt.zero_grad()
        F.cross_entropy(model(**batch()).logits, labels).backward()
        opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable(model)


# ---- adapters ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", ADAPTERS)
def test_adapters_start_as_identity_and_have_the_bottleneck_size(make, model_name, method):
    injector, built = make(model_name, method, "peft.reduction_factor=4", "peft.non_linearity=gelu")
    original = logits(built.model)
    model = injector.inject(built.model, built.new_parameters)
    assert torch.equal(logits(model), original)
    adapters = [m for n, m in model.named_modules() if n.endswith(".adapter")]
    assert len(adapters) == (4 if method == "houlsby" else 2)
    for adapter in adapters:
        assert (adapter.down.in_features, adapter.down.out_features) == (HIDDEN, HIDDEN // 4)
        assert (adapter.up.in_features, adapter.up.out_features) == (HIDDEN // 4, HIDDEN)
        assert isinstance(adapter.act, nn.GELU)
        assert not adapter.up.weight.any() and adapter.down.weight.any()
    perturb_trainable(model)  # the adapters are really in the forward path
    assert not torch.allclose(logits(model), original)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", ["houlsby", "pfeiffer", "bitfit", "head", "zeroshot"])
def test_save_pretrained_then_load_into_a_fresh_model_gives_the_same_logits(make, tmp_path, model_name, method):
    injector, model = perturbed(make, model_name, method)
    injector.save_pretrained(model, tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / CONFIG_FILE).read_text())
    assert saved["method"] == method and saved["hparams"] == injector.hparams()

    injector2, built2 = make(model_name, method)  # same seed: the same "pretrained" backbone
    fresh = injector2.inject(built2.model, built2.new_parameters)
    if method != "zeroshot":
        assert not torch.allclose(logits(fresh), logits(model))
    injector2.load_pretrained(fresh, tmp_path / "saved")
    assert torch.equal(logits(fresh), logits(model))


def test_adapter_weights_do_not_load_into_another_method(make, tmp_path):
    injector, built = make("tiny_bert", "houlsby")
    injector.save_pretrained(injector.inject(built.model, built.new_parameters), tmp_path / "h")
    other, built2 = make("tiny_bert", "pfeiffer")
    with pytest.raises(UserError, match="holds peft=houlsby.*not peft=pfeiffer"):
        other.load_pretrained(other.inject(built2.model, built2.new_parameters), tmp_path / "h")


@pytest.mark.parametrize("method", ADAPTERS)
def test_adapters_cannot_merge(make, tmp_path, method):
    injector, built = make("tiny_bert", method)
    model = injector.inject(built.model, built.new_parameters)
    assert injector.can_merge is False
    with pytest.raises(UserError, match=f"peft={method} cannot be merged"):
        injector.merge(model)
    with pytest.raises(UserError, match="cannot be merged"):
        injector.export(model, tmp_path / "export")


# ---- plain-model methods export ---------------------------------------------------------------
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", ["bitfit", "head", "zeroshot"])
def test_export_loads_in_plain_transformers(make, tmp_path, model_name, method):
    injector, model = perturbed(make, model_name, method)
    assert injector.can_merge
    injector.export(model, tmp_path / "export", tokenizer=_backbones[model_name][1])
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "export").eval()
    assert torch.allclose(logits(loaded), logits(model), atol=1e-5)


# ---- settings and errors ----------------------------------------------------------------------
def test_each_method_brings_its_learning_rate(compose):
    default_lr = compose("peft=full", "optimizer.lr=0.123").optimizer.lr
    assert default_lr == 0.123
    lrs = {m: compose(f"peft={m}").optimizer.lr for m in METHODS}
    base = compose("peft=zeroshot").optimizer.lr  # zeroshot leaves the optimizer default alone
    assert {k: float(v) for k, v in lrs.items()} == {
        "houlsby": 2e-3, "pfeiffer": 3e-3, "bitfit": 1e-2, "head": 1e-1, "zeroshot": float(base)}
    cfg = compose("peft=houlsby")
    assert (cfg.peft.reduction_factor, cfg.peft.non_linearity) == (16, "relu")


def test_bad_adapter_settings_are_user_errors(make, compose):
    with pytest.raises(InvalidChoice, match="use one of: relu, gelu, swish"):
        build(compose("peft=houlsby", "peft.non_linearity=tanh"), "peft")
    with pytest.raises(UserError, match="reduction_factor=0 must be a positive integer"):
        build(compose("peft=pfeiffer", "peft.reduction_factor=0"), "peft")
    with pytest.raises(UserError, match="expected an integer"):
        build(compose("peft=pfeiffer", "peft.reduction_factor=abc"), "peft")
    injector, built = make("tiny_bert", "houlsby", "peft.reduction_factor=64")
    with pytest.raises(UserError, match="reduction_factor=64 is larger than the hidden size 32"):
        injector.inject(built.model, built.new_parameters)
    injector2, built2 = make("tiny_bert", "houlsby")
    model = injector2.inject(built2.model, built2.new_parameters)
    with pytest.raises(UserError, match="already has adapters"):  # the same model injected twice
        injector2.inject(model, built2.new_parameters)


@pytest.mark.parametrize(("arch", "extra"), [("qwen2", {}), ("mistral", {}), ("gemma", {"head_dim": 16})])
def test_adapters_and_bitfit_on_other_decoders(arch, extra):
    """Located by shape, not names: Gemma's heads * head_dim (64) != hidden (32), and equals its intermediate."""
    config = AutoConfig.for_model(arch, num_labels=3, vocab_size=100, pad_token_id=0, hidden_size=32,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  intermediate_size=64, **extra)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    ids = torch.randint(1, 100, (2, 6))
    with torch.no_grad():
        original = model(input_ids=ids).logits
    if arch != "qwen2":  # qwen2 keeps q/k/v biases
        with pytest.raises(UserError, match=f"BitFit needs bias terms; {arch} has none"):
            BitFitInjector().inject(model, {"score.weight"})
    HoulsbyInjector(reduction_factor=4).inject(model, {"score.weight"})
    places = ("model.layers.{i}.self_attn.o_proj", "model.layers.{i}.mlp.down_proj")
    adapters = {f"{p.format(i=i)}.adapter.{a}" for p in places for i in range(2) for a in AD}
    assert trainable(model) == {"score.weight"} | adapters
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, original)


class _Cfg:
    hidden_size = 8


class _FFNOnlyBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = nn.Linear(8, 16), nn.Linear(16, 8)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


class _FFNOnlyModel(nn.Module):
    config = _Cfg()

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([_FFNOnlyBlock(), _FFNOnlyBlock()])


def test_adapters_name_what_they_cannot_find():
    with pytest.raises(UserError, match="no attention output projection .* found in layers.0 \\(_FFNOnlyBlock\\)"):
        HoulsbyInjector(reduction_factor=4).inject(_FFNOnlyModel(), set())
    model = PfeifferInjector(reduction_factor=4).inject(_FFNOnlyModel(), set())  # needs only the FFN output
    assert trainable(model) == {f"layers.{i}.down.adapter.{a}" for i in range(2) for a in AD}
    flat = nn.Sequential(nn.Linear(8, 8))
    flat.config = _Cfg()
    with pytest.raises(UserError, match="no repeated transformer blocks"):
        PfeifferInjector(reduction_factor=4).inject(flat, set())


def test_head_needs_a_fresh_head(make):
    injector, built = make("tiny_bert", "head")
    with pytest.raises(UserError, match="already has one"):
        injector.inject(built.model, set())


# ---- whole runs ------------------------------------------------------------------------------
def test_zeroshot_run_tests_the_untrained_model(compose):
    from ftlab.run import run

    results = run(compose("peft=zeroshot"))
    assert results["status"] == "completed"
    assert results["params"]["trainable"] == 0 and results["params"]["total"] > 0
    assert results["best_checkpoint"] is None and results["history"] == []
    assert 0.0 <= results["test"]["test/accuracy"] <= 1.0


def test_houlsby_run_checkpoints_only_adapters_and_head(compose):
    from ftlab.run import run

    results = run(compose("peft=houlsby", "model=tiny_roberta"))
    ckpt = torch.load(f"{results['run_dir']}/{results['best_checkpoint']}", map_location="cpu", weights_only=False)
    weights = {k for k, v in ckpt["state_dict"].items() if v.is_floating_point()}
    assert weights and all(".adapter." in k or k.startswith("model.classifier.") for k in weights)
    p = results["params"]
    assert p["trainable"] == 2 * 2 * (32 * 2 + 2 + 2 * 32 + 32) + (32 * 32 + 32 + 32 * 3 + 3)


# ---- parameter counts of the studies' shapes -----------------------------------------------------
SHAPES = {
    "bert-base": {},
    "roberta-base": {"vocab_size": 50265, "max_position_embeddings": 514, "type_vocab_size": 1},
}
INJECTORS = {"houlsby": HoulsbyInjector, "pfeiffer": PfeifferInjector, "bitfit": BitFitInjector,
             "head": HeadOnly, "zeroshot": ZeroShot}
# adapter (r16, bottleneck 48) = 768*48+48 + 48*768+768 = 74,544; 12 layers
# bert-base: head = classifier 768*2+2 = 1,538 (the pooler is pretrained, not new); total 109,483,778
#   houlsby 24*74,544 + 1,538; pfeiffer 12*74,544 + 1,538
#   bitfit: per layer q,k,v,o 4*768 + LN 768 + intermediate 3072 + output 768 + LN 768 = 8,448;
#           12*8,448 + embeddings LN 768 + pooler 768 + head 1,538 = 104,450
# roberta-base: head = classifier.dense 768*768+768 + out_proj 1,538 = 592,130 (no pooler); total 124,647,170
#   bitfit: 12*8,448 + embeddings LN 768 + head 592,130 = 694,274
COUNTS = {
    ("bert-base", "houlsby"): (1_790_594, 111_272_834),
    ("bert-base", "pfeiffer"): (896_066, 110_378_306),
    ("bert-base", "bitfit"): (104_450, 109_483_778),
    ("bert-base", "head"): (1_538, 109_483_778),
    ("bert-base", "zeroshot"): (0, 109_483_778),
    ("roberta-base", "houlsby"): (2_381_186, 126_436_226),
    ("roberta-base", "pfeiffer"): (1_486_658, 125_541_698),
    ("roberta-base", "bitfit"): (694_274, 124_647_170),
    ("roberta-base", "head"): (592_130, 124_647_170),
    ("roberta-base", "zeroshot"): (0, 124_647_170),
}


@pytest.fixture(scope="module")
def base_shaped():
    """shape -> a builder of that model on the meta device: exact shapes, no memory, milliseconds."""
    configs = {name: AutoConfig.for_model(name.split("-")[0], num_labels=2, **kw) for name, kw in SHAPES.items()}

    def _build(name: str):
        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(configs[name])
        prefix = model.base_model_prefix + "."  # as Backbone.build marks a random model's new parameters
        return model, {n for n, _ in model.named_parameters() if not n.startswith(prefix)}

    return _build


@pytest.mark.parametrize(("shape", "method"), list(COUNTS))
def test_trainable_parameter_counts_of_base_models(base_shaped, shape, method):
    model, new = base_shaped(shape)
    injector = INJECTORS[method]()
    report = injector.trainable_report(injector.inject(model, new))
    assert (report.trainable, report.total) == COUNTS[(shape, method)]
