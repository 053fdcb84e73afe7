"""Memory: the studies' numbers, the activation formula by hand, estimate vs the exact bytes of a
tiny run, and `ftlab estimate` through the real CLI."""

import json

import pytest

from support.cli import run_cli
from ftlab.memory import GiB, layer_activation_bytes, params_only, static_bytes
from ftlab.memory.formulas import optimizer_states


# ---- the studies' numbers ---------------------------------------------------------------------
def test_study_000_3b_full_and_adapters():
    est = params_only(3e9, 0.05)
    full, adapters = est["methods"]["full"]["total_bytes"], est["methods"]["adapters"]["total_bytes"]
    assert full == 3e9 * 4 * 4 and adapters == 3e9 * 4 * 1.05 + 3 * 3e9 * 4 * 0.05
    assert round(full / GiB, 3) == 44.703
    assert round(adapters / GiB, 3) == 13.411
    assert round(est["saved_bytes"] / GiB, 3) == 31.292


def test_study_001_activation_coefficients():
    """001's 3B example (h=1920, h'=7680, d=64, a=32): 1.84e-2 bl^2 + 8.11 bl MB of activations."""
    d = 64

    def acts(b, l):
        return d * layer_activation_bytes(b, l, h=1920, a=32, h_ff=7680)

    per_bl, per_bl2 = d * (34 * 1920 + 8 * 7680), d * 9 * 32
    assert (per_bl, per_bl2) == (8_110_080, 18_432)  # the study's 8.11 and 1.84e-2 (in 1e6 bytes)
    assert acts(1, 1) == per_bl + per_bl2
    assert acts(4, 100) == 4 * 100 * per_bl + 4 * 100**2 * per_bl2


def test_layer_activations_by_hand():
    b, l, h, a, f = 2, 3, 4, 2, 8  # blh = 24, bal^2 = 36, blh' = 48
    assert layer_activation_bytes(b, l, h, a, f) == 34 * 24 + 9 * 36 + 8 * 48 == 1524
    # frozen layer: no inputs of frozen Linears (x, concat, x2: 12blh; GeLU output: 4blh')
    assert layer_activation_bytes(b, l, h, a, f, frozen=True) == 22 * 24 + 9 * 36 + 4 * 48
    # no dropout: masks gone (2blh + bal^2); 16-bit values with 1-byte masks
    assert layer_activation_bytes(b, l, h, a, f, hidden_dropout=False, attention_dropout=False) == 32 * 24 + 8 * 36 + 8 * 48
    assert layer_activation_bytes(b, l, h, a, f, value=2) == 18 * 24 + 5 * 36 + 4 * 48
    # fused attention: no l^2 tensors, a b*a*l fp32 logsumexp
    assert layer_activation_bytes(b, l, h, a, f, fused_attention=True) == 34 * 24 + 4 * 2 * 2 * 3 + 8 * 48


def test_static_bytes_and_optimizers():
    assert static_bytes(100, 10) == {"weights": 400, "gradients": 40, "optimizer_states": 80}
    assert optimizer_states("torch.optim.AdamW")[:2] == (2, True)
    assert optimizer_states("torch.optim.SGD", 0.9)[:2] == (1, False)
    assert optimizer_states("torch.optim.SGD", 0.0)[0] == 0
    sgd = params_only(1e6, None, optimizer="sgd")["methods"]["full"]["bytes"]
    assert sgd == {"weights": 4e6, "gradients": 4e6, "optimizer_states": 4e6}


# ---- estimate of a built model ----------------------------------------------------------------
def _estimate(compose, *overrides, **kw):
    from ftlab.memory.command import build_for_estimate
    from ftlab.memory.measure import estimate_for_config

    cfg = compose(*overrides)
    model, injector = build_for_estimate(cfg)
    return estimate_for_config(cfg, model, injector, **kw)


def test_tiny_full_vs_lora(compose):
    full = _estimate(compose, "peft=full", batch_size=8, max_length=64, device="cuda")
    lora = _estimate(compose, "peft=lora", batch_size=8, max_length=64, device="cuda")
    assert full["params"]["trainable"] == full["params"]["total"] > lora["params"]["trainable"] > 0
    for part in ("gradients", "optimizer_states", "activations"):
        assert lora["bytes"][part] < full["bytes"][part], part
    p = full["params"]["trainable"]
    assert full["bytes"]["gradients"] == 4 * p and full["bytes"]["weights"] == 4 * p
    # tiny_bert (h=32, a=2, h'=64, d=2), fully trained: the study's layers (SDPA on CUDA: fused attention)
    # + the embeddings' LN input (4 bytes) and dropout mask (1 byte)
    b, l = 8, 64
    assert full["attention"].startswith("sdpa (fused")
    assert full["bytes"]["activations"] == 2 * layer_activation_bytes(b, l, 32, 2, 64, fused_attention=True) + 5 * b * l * 32
    assert full["study_formula_activations"] == 2 * layer_activation_bytes(b, l, 32, 2, 64)
    mixed = _estimate(compose, "peft=full", "trainer.precision=bf16-mixed", batch_size=8, max_length=64, device="cuda")
    assert mixed["bytes"]["activations"] < full["bytes"]["activations"] and mixed["bytes"]["autocast_weight_copies"] > 0


def test_meta_build_counts_match_the_real_model(compose):
    """The estimate's meta-device model has the parameter counts of the model a run trains."""
    from ftlab.config import build

    cfg = compose("peft=lora")
    backbone, injector = build(cfg, "model"), build(cfg, "peft")
    built = backbone.build(build(cfg, "dataset").task(), backbone.load_tokenizer())
    report = injector.trainable_report(injector.inject(built.model, built.new_parameters))
    est = _estimate(compose, "peft=lora")
    assert est["params"] == {"total": report.total, "trainable": report.trainable}


def test_tiny_run_measures_exact_bytes(compose):
    from ftlab.memory.command import build_for_estimate
    from ftlab.run import run

    cfg = compose("peft=lora", "logger=none")
    model, _ = build_for_estimate(cfg)
    tensors = len({id(p) for p in model.parameters() if p.requires_grad})
    results = run(cfg)
    mem, params = results["memory"], results["params"]
    measured = mem["measured"]
    assert measured["measured_at"] == "first optimizer step" and measured["device"] == "cpu"
    assert measured["weights"] == 4 * params["total"]
    assert measured["gradients"] == 4 * params["trainable"]
    # AdamW: two fp32 moments per trainable parameter + one fp32 step scalar per trainable tensor
    assert measured["optimizer_states"] == 2 * 4 * params["trainable"] + 4 * tensors
    for part in ("weights", "gradients", "optimizer_states"):  # the estimate gets these exactly
        assert mem["compare"][part]["estimate"] == mem["compare"][part]["measured"], part
    acts = mem["compare"]["activations"]  # estimated at the first batch's padded shape
    assert 0.7 < acts["measured"] / acts["estimate"] < 1.3, acts
    assert measured["peak_rss_bytes"] > 0 and mem["estimate"]["batch_size"] == 8


# ---- the CLI ----------------------------------------------------------------------------------
def test_cli_estimate_configured_model():
    proc = run_cli("estimate", "model=tiny_bert", "peft=lora")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in ("component", "weights", "gradients", "optimizer_states", "activations", "total", "GiB", "model=tiny_bert"):
        assert text in proc.stdout, text
    proc = run_cli("estimate", "--json", "--batch-size", "4", "--max-length", "16", "model=tiny_bert", "peft=full")
    assert proc.returncode == 0, proc.stderr[-2000:]
    est = json.loads(proc.stdout)
    assert (est["batch_size"], est["max_length"]) == (4, 16) and est["total_bytes"] == sum(est["bytes"].values())


def test_cli_estimate_by_size():
    proc = run_cli("estimate", "--params", "3e9")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "44.703" in proc.stdout and "13.411" in proc.stdout and "31.292" in proc.stdout


@pytest.mark.parametrize("args", [["--params", "abc"], ["--params", "3e9", "--adapter-fraction", "2"],
                                  ["model=robrta"]])
def test_cli_estimate_bad_arguments(args):
    proc = run_cli("estimate", *args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "error:" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 6, proc.stderr
    if "model=robrta" in args:
        assert "model/robrta" in proc.stderr and "tiny_bert" in proc.stderr


def test_gradient_checkpointing_keeps_layer_inputs_and_recomputes_one_layer(compose):
    from ftlab.memory.command import build_for_estimate
    from ftlab.memory.estimate import estimate_model

    cfg = compose("peft=full")
    model, _ = build_for_estimate(cfg)
    plain = estimate_model(model, batch_size=8, max_length=64, device="cuda")
    for module in model.modules():
        if hasattr(module, "gradient_checkpointing"):
            module.gradient_checkpointing = True
    ckpt = estimate_model(model, batch_size=8, max_length=64, device="cuda")
    layer = layer_activation_bytes(8, 64, 32, 2, 64, fused_attention=True)
    assert ckpt["dims"]["gradient_checkpointing"] and not plain["dims"]["gradient_checkpointing"]
    assert plain["bytes"]["activations"] - ckpt["bytes"]["activations"] == 2 * layer - 2 * 8 * 64 * 32 * 4
    assert ckpt["bytes"]["checkpoint_recompute"] == layer
