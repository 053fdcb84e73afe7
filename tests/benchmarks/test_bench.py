"""The benchmark (bench/, `make bench`) in its smoke mode: every contender (fp32 and bf16-mixed) runs a
few steps, the peak process measures its matmul shapes, and the JSON and Markdown reports hold
every contender, figure, peak, ratio and target. Two processes (the data-cold `python -m ftlab`,
then one that runs every contender, ftlab's through ftlab.train): about 35 s on an idle 2-core
machine, most of it imports and model loads. The rest: the report's arithmetic on small inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is a folder of the repository, not part of the installed package
    sys.path.insert(0, str(REPO))

CONTENDERS = ("ftlab-full", "plain", "ftlab-full-bf16", "plain-bf16", "hf-grouped", "hf-grouped-bf16", "ftlab-lora",
              "hf-pad128")
EPOCH_CONTENDERS = ("ftlab-full", "plain", "ftlab-full-bf16", "plain-bf16", "hf-grouped", "hf-grouped-bf16")
FIGURES = ("train_samples_per_s", "step_ms", "real_tokens_per_s", "padded_tokens_per_s", "train_gflops",
           "pct_of_peak", "eval_samples_per_s", "first_step_s", "first_step_from_launch_s", "data_setup_s", "peak_rss_gib")
FP32, BF16 = "32-true", "bf16-mixed"
# MiniLM-L6 (hidden 384, FFN 1536, 6 layers) + pooler + 3-way head: the Linear weights, nothing else
MINILM_MATMUL = 6 * (4 * 384 * 384 + 2 * 384 * 1536) + 384 * 384 + 384 * 3


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # the contenders named, bf16 ones included: by default a CPU that emulates bf16 leaves those out
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--threads", "1", "--out", str(out),
                           "--contenders", ",".join(CONTENDERS), "--date", "smoke"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "smoke.json").read_text()), (out / "smoke.md").read_text()


def test_json_has_every_contender_and_figure(smoke):
    res, _ = smoke
    window, epoch = res["summary"]["window"], res["summary"]["epoch"]
    assert list(window) == list(CONTENDERS) and list(epoch) == list(EPOCH_CONTENDERS)
    for name in CONTENDERS:
        for key in FIGURES:
            assert window[name][key] > 0, (name, key)
        rows = [r for r in (window[name], epoch.get(name, {})) if "test_accuracy" in r]
        assert rows and all(0 <= r["test_accuracy"] <= 1 and 0 <= r["test_macro_f1"] <= 1 for r in rows), name
    for name in EPOCH_CONTENDERS:
        assert epoch[name]["train_samples_per_s"] > 0 and epoch[name]["span_steps"] == res["config"]["epoch_steps"]
    assert epoch["ftlab-full"]["ftlab_own_train_samples_per_s"] > 0

    runs = [r for r in res["runs"] if r["phase"] == "train"]
    assert sorted(r["contender"] for r in runs) == sorted(CONTENDERS)
    assert {r["figures"]["eval_samples"] for r in runs} == {res["config"]["eval_examples"]}  # one test subset for all
    assert res["identical_batches"] == {"ftlab-full/plain": {"window": True, "epoch": True},
                                        "ftlab-full-bf16/plain-bf16": {"window": True, "epoch": True}}

    assert {p: len(r["step_median"]) for p, r in res["step_ratios"].items()} == {
        "ftlab-full/plain": 1, "ftlab-full-bf16/plain-bf16": 1}  # one epoch repetition in --quick
    assert all(v > 0 for r in res["step_ratios"].values() for v in r["step_median"] + r["total"])

    data = res["data_setup"]
    assert data["cold_cache_hit"] == [False] and data["cold_median"] > 0 and data["warm_median"] > 0
    assert set(res["ratios"]["window"]) == set(CONTENDERS) - {"ftlab-full", "ftlab-full-bf16"}
    assert res["ratios"]["window"]["plain-bf16"]["ref"] == "ftlab-full-bf16"  # like with like
    assert res["ratios"]["window"]["plain"]["ref"] == "ftlab-full"
    assert all(t["measured"] is not None and t["pass"] in (True, False) for t in res["targets"]), res["targets"]
    assert len(res["targets"]) == 11
    meta = res["meta"]
    assert meta["cpu_model"] and meta["cpus_usable"] >= 1 and meta["versions"]["torch"] and meta["versions"]["transformers"]
    assert "git_commit" in meta and meta["duration_seconds"] > 0


def test_every_contender_runs_in_the_precision_it_asks_for(smoke):
    """bf16 contenders: bf16 autocast inside the forward, in training and evaluation (the HF Trainer's
    bf16=True included); fp32 ones: none. ftlab's own results.json agrees."""
    res, _ = smoke
    seen = res["precision_seen"]
    assert set(seen) == set(CONTENDERS)
    for name, entry in seen.items():
        want = BF16 if name.endswith("-bf16") else FP32
        assert entry["asked"] == want and entry["ok"], (name, entry)
        assert entry["seen"]["train"]["autocast"] == ("bfloat16" if want == BF16 else None), name
        assert entry["seen"]["train"]["weight"] == "float32", name  # mixed precision: fp32 master weights
    assert seen["ftlab-full-bf16"]["ftlab_used"] == BF16 and seen["ftlab-full"]["ftlab_used"] == FP32
    hf = [r for r in res["runs"] if r["contender"] == "hf-grouped-bf16"][0]
    assert hf["child"]["mixed_precision"] == "bf16"


def test_peaks_and_utilisation(smoke):
    """Both peaks at the model's own shapes, and each contender's % against the peak of its precision
    with FLOPs = 6 x the matmul (non-embedding Linear) parameters x real tokens."""
    res, md = smoke
    peak, params = res["peak"], res["params"]
    t = peak["tokens"]
    shapes = {s["name"]: s for s in peak["shapes"]}
    assert (shapes["attn proj"]["m"], shapes["attn proj"]["k"], shapes["attn proj"]["n"]) == (t, 384, 384)
    assert (shapes["ffn up"]["m"], shapes["ffn up"]["k"], shapes["ffn up"]["n"]) == (t, 384, 1536)
    assert (shapes["ffn down"]["m"], shapes["ffn down"]["k"], shapes["ffn down"]["n"]) == (t, 1536, 384)
    assert [s["per_layer"] for s in peak["shapes"][:3]] == [4, 1, 1]
    assert "ftlab's" in peak["tokens_basis"] and t > 0  # T from ftlab's own batches
    for p in (FP32, BF16):
        assert peak["gflops"][p] > 0 and peak["square_gflops"][p] > 0 and peak["training_mix_gflops"][p] > 0
        rates = [s[p]["gflops_best"] for s in peak["shapes"][:3]]
        assert min(rates) <= peak["gflops"][p] <= max(rates)  # a weighted mean of the model's products
    assert peak["native_bf16"] in (True, False) and peak["native_bf16_why"]

    assert params["matmul"] == MINILM_MATMUL
    head = 384 * 3 + 3
    assert params["matmul"] < params["total"] - params["embedding"] + head
    assert params["embedding"] > 11_000_000 and params["total"] > 20_000_000
    for run in res["runs"]:  # the children count the same on their real models
        if run["phase"] == "train" and not run["contender"].startswith("ftlab-"):
            assert run["child"]["params"]["matmul"] == params["matmul"], run["contender"]
    for name, row in res["summary"]["window"].items():
        rate = peak["gflops"][BF16 if name.endswith("-bf16") else FP32]
        expected = 100 * 6 * params["matmul"] * row["real_tokens_per_s"] / 1e9 / rate
        assert row["pct_of_peak"] == pytest.approx(expected, rel=1e-6), name

    default, shipped = res["ftlab_default"]["contender"], res["config"]["ftlab_conf_precision"]
    bf16 = shipped == "bf16-mixed" or (shipped == "auto" and peak["native_bf16"])  # peft/full.yaml's or base.yaml's
    assert default == ("ftlab-full-bf16" if bf16 else "ftlab-full")
    assert f"fp32 {peak['gflops'][FP32]:.1f} GFLOP/s, bf16 {peak['gflops'][BF16]:.1f} GFLOP/s" in md


def test_markdown_has_every_contender_figure_and_target(smoke):
    res, md = smoke
    from bench.report import FIGURES as TITLES

    for name in CONTENDERS:
        assert f"| {name} |" in md
    for key in FIGURES + ("test_accuracy", "test_macro_f1"):
        assert TITLES[key][0] in md, key
    assert "% of peak (its precision)" in md
    for target in res["targets"]:
        assert target["target"].replace("|", "\\|") in md
    for heading in ("## Training window", "## Full epoch", "## ftlab data set-up", "## Matmul peaks", "## Ratios",
                    "## Targets"):
        assert heading in md
    assert "QUICK SMOKE MODE" in md and len(md.splitlines()) < 300


def test_metrics_match_ftlab():
    """The HF and plain-loop processes compute accuracy and macro-F1 without torchmetrics; ftlab's
    own definitions give the same numbers (a class never predicted nor present is left out)."""
    from bench.common import classification_metrics
    from ftlab.data.sources.absa import LABELS
    from ftlab.data.task import classification
    from ftlab.models.metrics import build_metrics

    gen = torch.Generator().manual_seed(0)
    for labels, logits in [(torch.randint(0, 3, (50,), generator=gen), torch.randn(50, 3, generator=gen)),
                           (torch.tensor([0, 0, 2, 2]), torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]]))]:
        expected = build_metrics(classification(LABELS))
        expected.update(logits.argmax(-1), labels)
        expected = {k: float(v) for k, v in expected.compute().items()}
        got = classification_metrics(logits, labels)
        assert got["accuracy"] == pytest.approx(expected["accuracy"])
        assert got["macro_f1"] == pytest.approx(expected["macro_f1"])


def test_window_arithmetic():
    from bench.report import _span

    child = {"step_ends": [1.0, 1.5, 2.5, 3.0], "batches": [[4, 10, 12], [4, 20, 24], [2, 6, 8], [4, 8, 8]]}
    fig = _span(child, 1, 3)  # steps 2 and 3: from the end of step 1 (1.0 s) to the end of step 3 (2.5 s)
    assert fig["span_seconds"] == pytest.approx(1.5) and fig["span_samples"] == 6
    assert fig["train_samples_per_s"] == pytest.approx(4.0) and fig["step_ms"] == pytest.approx(750)
    assert fig["real_tokens_per_s"] == pytest.approx(26 / 1.5) and fig["pad_fraction"] == pytest.approx(1 - 26 / 32)
    whole = _span(child, 0, 4)  # from the train call (0 s)
    assert whole["span_seconds"] == pytest.approx(3.0) and whole["span_samples"] == 14
    with pytest.raises(ValueError):
        _span(child, 3, 6)


def test_mix_rate_is_flop_weighted():
    """The peak of a mix: its FLOPs over the time they take at each product's rate."""
    from bench.contenders import matmul_shapes, mix_rate

    shapes = matmul_shapes(384, 1536, 100, 64)[:3]
    for s, rate in zip(shapes, (100.0, 200.0, 400.0)):
        s[FP32] = {"gflops_best": rate}
    flops = [4 * 100 * 384 * 384, 100 * 384 * 1536, 100 * 1536 * 384]  # x2 each: cancels
    expected = sum(flops) / (flops[0] / 100 + flops[1] / 200 + flops[2] / 400)
    assert mix_rate(shapes, FP32, "per_layer") == pytest.approx(expected)


def test_matmul_params_leave_embeddings_out():
    from transformers import BertConfig, BertForSequenceClassification

    from bench.common import param_counts

    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=3)
    with torch.device("meta"):
        counts = param_counts(BertForSequenceClassification(config))
    assert counts["matmul"] == 2 * (4 * 16 * 16 + 2 * 16 * 64) + 16 * 16 + 16 * 3
    assert counts["embedding"] == (100 + 32 + 2) * 16 + 2 * 16  # word, position, type embeddings + LayerNorm


def _row(rate: float, acc: float = 0.75) -> dict:
    return {"train_samples_per_s": rate, "step_ms": 1000 * 32 / rate, "eval_samples_per_s": rate * 3,
            "test_accuracy": acc, "peak_rss_gib": 2.0}


def _summary(hf_bf16: float, ftlab_bf16: float) -> dict:
    rows = {"ftlab-full": _row(70), "plain": _row(70), "ftlab-full-bf16": _row(ftlab_bf16), "plain-bf16": _row(ftlab_bf16),
            "hf-grouped": _row(60), "hf-grouped-bf16": _row(hf_bf16, 0.74), "ftlab-lora": _row(80), "hf-pad128": _row(13)}
    return {"window": rows, "epoch": {k: v for k, v in rows.items() if k not in ("ftlab-lora", "hf-pad128")}}


@pytest.mark.parametrize("native", [True, False])
def test_targets_compare_ftlab_default_with_the_fastest_hf(native):
    from bench.report import ftlab_default, targets

    summary = _summary(hf_bf16=75.0, ftlab_bf16=120.0)
    config = {"acc_tol": 0.03, "batch_size": 32, "quick": False, "ftlab_conf_precision": "auto"}
    peak = {"native_bf16": native, "native_bf16_why": "test"}
    res = {"summary": summary, "ftlab_default": ftlab_default(summary, peak, config),
           "identical_batches": {"ftlab-full/plain": {"window": True, "epoch": True}},
           "data_setup": {"speedup": 40.0, "cold_median": 0.8, "warm_median": 0.02, "cold_seconds": [0.8],
                          "warm_seconds": [0.02]}, "meta": {"duration_seconds": 1000.0}}
    rows = targets(res, config)
    fastest = [t for t in rows if "fastest HF Trainer, equal" in t["target"]][0]
    assert "fastest HF: hf-grouped-bf16" in fastest["basis"]  # 75 > 60: the bf16 HF row is the bar
    if native:  # ftlab's default is its bf16 row: 120 / 75 = 1.6
        assert fastest["measured"] == pytest.approx(1.6) and fastest["pass"]
    else:  # fp32 row: 70 / 75
        assert fastest["measured"] == pytest.approx(70 / 75) and not fastest["pass"]
    steps = [t for t in rows if t["target"].startswith("time/step")]
    assert len(steps) == 4 and all(t["measured"] == pytest.approx(1.0) and t["pass"] for t in steps)
    gap = [t for t in rows if t["target"].startswith("test accuracy gap")][0]
    assert gap["measured"] == pytest.approx(0.01) and gap["pass"]


@pytest.mark.parametrize("conf, native, row", [("32-true", True, "ftlab-full"), ("auto", True, "ftlab-full-bf16"),
                                               ("auto", False, "ftlab-full"), ("bf16-mixed", False, "ftlab-full-bf16")])
def test_ftlab_default_is_the_shipped_precision(conf, native, row):
    from bench.report import ftlab_default

    summary = _summary(hf_bf16=75.0, ftlab_bf16=120.0)
    picked = ftlab_default(summary, {"native_bf16": native, "native_bf16_why": "test"}, {"ftlab_conf_precision": conf})
    assert picked["contender"] == row and conf in picked["why"]


@pytest.mark.parametrize("method", ["full", "lora", "bitfit"])
def test_the_bench_reads_the_precision_the_config_gives_each_method(compose, method):
    """bench/run.py reads the shipped precision as YAML (its parent imports no torch): it must be the
    one Hydra composes, wherever the method's recommendation or base.yaml puts it."""
    from bench.run import conf_precision

    assert conf_precision(method) == compose(f"peft={method}", tiny=False).trainer.precision


@pytest.mark.parametrize("flags, bf16", [({"avx2", "amx_bf16"}, True), ({"avx2", "avx512_bf16"}, True), ({"avx2"}, False)])
def test_the_default_contenders_leave_bf16_out_where_it_is_emulated(monkeypatch, flags, bf16):
    from bench.run import DEFAULT_CONTENDERS, parse_args
    from ftlab import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    args = parse_args([])
    expected = [c for c in DEFAULT_CONTENDERS.split(",") if bf16 or not c.endswith("-bf16")]
    assert args.contenders == expected and (args.bf16_skipped is None) == bf16
    assert all(c in args.contenders for c in ("ftlab-full", "plain", "hf-grouped"))
    named = parse_args(["--contenders", "ftlab-full,ftlab-full-bf16"])  # named: run, emulated or not
    assert named.contenders == ["ftlab-full", "ftlab-full-bf16"] and named.bf16_skipped is None


def test_step_ratios_pair_each_repetition_step_by_step():
    """One slow stretch moves the epoch ratio, hardly the median of per-step ratios; a repetition
    whose batches differ is left out."""
    from bench.pairs import step_ratios

    def run(name, rep, steps, batches=None):
        ends, t = [], 0.0
        for s in steps:
            t += s
            ends.append(t)
        return {"phase": "train", "epoch": True, "contender": name, "rep": rep,
                "child": {"step_ends": ends, "batches": batches or [[4, 10, 12]] * len(steps)}}

    records = [run("ftlab-full", 0, [1.1] * 9 + [11.0]), run("plain", 0, [1.0] * 10),
               run("ftlab-full", 1, [1.0] * 10), run("plain", 1, [1.0] * 10, [[4, 9, 12]] * 10)]
    got = step_ratios(records)
    assert list(got) == ["ftlab-full/plain"]
    assert got["ftlab-full/plain"]["step_median"] == [pytest.approx(1.1)]
    assert got["ftlab-full/plain"]["total"] == [pytest.approx(20.9 / 10)]
