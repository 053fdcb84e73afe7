"""The benchmark (bench/, `make bench`) in its smoke mode: every contender runs a few steps, and the
JSON and Markdown reports hold every contender, figure, ratio and target. About 40 s on an idle
2-core machine (seven processes, most of it imports)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # bench/ is a folder of the repository, not part of the installed package
    sys.path.insert(0, str(REPO))

CONTENDERS = ("ftlab-full", "ftlab-lora", "hf-pad128", "hf-grouped", "plain")
EPOCH_CONTENDERS = ("ftlab-full", "hf-grouped", "plain")
FIGURES = ("train_samples_per_s", "step_ms", "real_tokens_per_s", "padded_tokens_per_s", "train_gflops_6n",
           "pct_of_peak", "eval_samples_per_s", "first_step_s", "first_step_from_launch_s", "data_setup_s", "peak_rss_gib")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--threads", "1", "--out", str(out),
                           "--date", "smoke"], cwd=REPO, capture_output=True, text=True, timeout=600)
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
    assert res["identical_batches_ftlab_plain"] == {"window": True, "epoch": True}

    data = res["data_setup"]
    assert data["cold_cache_hit"] == [False] and data["cold_median"] > 0 and data["warm_median"] > 0
    assert res["peak_gflops"]["best"] > 0 and res["params_for_flops"] > 20_000_000  # MiniLM-L6 + head
    assert set(res["ratios"]["window"]) == set(CONTENDERS) - {"ftlab-full"}
    assert all(t["measured"] is not None and t["pass"] in (True, False) for t in res["targets"]), res["targets"]
    assert len(res["targets"]) == 9
    meta = res["meta"]
    assert meta["cpu_model"] and meta["cpus_usable"] >= 1 and meta["versions"]["torch"] and meta["versions"]["transformers"]
    assert "git_commit" in meta and meta["duration_seconds"] > 0


def test_markdown_has_every_contender_figure_and_target(smoke):
    res, md = smoke
    from bench.report import FIGURES as TITLES

    for name in CONTENDERS:
        assert f"| {name} |" in md
    for key in FIGURES + ("test_accuracy", "test_macro_f1"):
        assert TITLES[key][0] in md, key
    for target in res["targets"]:
        assert target["target"] in md
    for heading in ("## Training window", "## Full epoch", "## ftlab data set-up", "## Ratios", "## Targets"):
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
