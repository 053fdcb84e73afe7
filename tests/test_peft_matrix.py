"""The injector contract, for every method in conf/peft x tiny BERT, RoBERTa, DistilBERT, Llama, Gemma, Qwen2.

Each tiny backbone is saved once as a "pretrained" folder (base model only), so the head is
freshly initialised exactly as with real weights. For every pair: two optimizer steps change
exactly the trainable parameters (the head among them) and nothing frozen; the adapter saved by
`save_pretrained` reloads in a fresh process with identical logits; a mergeable method's export
loads in plain transformers (ftlab not imported) with the same logits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import REPO
from ftlab.config import build
from ftlab.data.task import classification
from ftlab.errors import UserError

METHODS = sorted(p.stem for p in (REPO / "ftlab" / "conf" / "peft").glob("*.yaml"))
ARCHS = ["tiny_bert", "tiny_roberta", "tiny_distilbert", "tiny_llama", "tiny_gemma", "tiny_qwen2"]
TASK = classification(["a", "b", "c"])
# (method, arch) pairs the injector refuses at start, with the reason it must give
REFUSED = {
    ("bitfit", "tiny_llama"): "bias",
    ("prefix", "tiny_distilbert"): "past key values",
    ("prompt", "tiny_llama"): "padding",
    ("bitfit", "tiny_gemma"): "bias",
    ("prompt", "tiny_gemma"): "padding",
    ("prompt", "tiny_qwen2"): "padding",
}


def make_batch(vocab: int = 1000) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (3, 12), generator=gen)
    mask = torch.ones_like(ids)
    ids[1, 8:], mask[1, 8:] = 0, 0  # one right-padded example (pad id 0)
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory):
    """arch -> folder holding a saved random base model (no head)."""
    from hydra import compose, initialize_config_dir
    from transformers import AutoModel

    from ftlab.config import CONF_DIR
    from ftlab.config import register_resolvers

    register_resolvers()
    folders = {}
    for arch in ARCHS:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=[f"model={arch}", "paths.output_dir=/tmp"])
        backbone = build(cfg, "model")
        tokenizer = backbone.load_tokenizer()
        torch.manual_seed(0)
        config = backbone._config(TASK, tokenizer)
        folder = tmp_path_factory.mktemp(arch)
        AutoModel.from_config(config).save_pretrained(folder)
        folders[arch] = folder
    return folders


# hidden size 32 / 16 leaves a 2-unit bottleneck whose ReLUs can all be dead on the one [CLS] row
# the last layer's gradient flows through: widen it so "every adapter weight moves" is a fair test
METHOD_OVERRIDES = {"houlsby": ["peft.reduction_factor=2"], "pfeiffer": ["peft.reduction_factor=2"]}


def overrides(method: str, arch: str, folder: Path) -> list[str]:
    return [f"model={arch}", f"model.pretrained={folder}", f"peft={method}", *METHOD_OVERRIDES.get(method, [])]


def build_injected(cfg):
    """Exactly what a run does: backbone (with the injector's load kwargs), then inject."""
    torch.manual_seed(1)  # the fresh head
    backbone = build(cfg, "model")
    tokenizer = backbone.load_tokenizer()
    injector = build(cfg, "peft")
    built = backbone.build(TASK, tokenizer, **injector.load_kwargs())
    return injector.inject(built.model, built.new_parameters), injector, tokenizer


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.fixture(scope="session")
def matrix_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("matrix")


TRAINED: dict[tuple[str, str], dict] = {}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", METHODS)
def test_training_step_changes_exactly_the_trainable_parameters(compose, tiny_pretrained, matrix_dir, method, arch):
    cfg = compose(*overrides(method, arch, tiny_pretrained[arch]))
    if (method, arch) in REFUSED:
        with pytest.raises(UserError, match=REFUSED[(method, arch)]):
            build_injected(cfg)
        return
    model, injector, tokenizer = build_injected(cfg)
    batch = make_batch()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    report = injector.trainable_report(model)
    assert report.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) or method == "qlora"

    before = snapshot(model)
    if injector.trains:
        assert any(("classifier" in n or "score" in n) for n in trainable), "the head must train"
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
        model.train()
        for _ in range(2):  # zero-initialised halves (LoRA B, adapter up) only move A/down on step 2
            loss = torch.nn.functional.cross_entropy(model(**batch).logits.float(), torch.tensor([0, 1, 2]))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
        assert changed == trainable, (sorted(trainable - changed)[:5], sorted(changed - trainable)[:5])
    else:
        assert not trainable

    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits.float()
    out = matrix_dir / f"{method}-{arch}"
    injector.save_pretrained(model, out / "adapter")
    entry = {"overrides": overrides(method, arch, tiny_pretrained[arch]), "adapter": str(out / "adapter"),
             "logits": logits.tolist(), "export": None}
    if injector.can_merge:
        injector.export(model, out / "export", tokenizer)
        entry["export"] = str(out / "export")
    else:
        with pytest.raises(UserError, match="cannot be merged"):
            injector.merge(model)
    TRAINED[(method, arch)] = entry


FRESH_LOAD = textwrap.dedent("""
    import json, sys, torch
    sys.path.insert(0, "tests")
    from hydra import compose, initialize_config_dir
    from ftlab.config import CONF_DIR
    from ftlab.config import register_resolvers
    from test_peft_matrix import build_injected, make_batch
    register_resolvers()
    entries, out = json.load(open(sys.argv[1])), {}
    for key, e in entries.items():
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=e["overrides"] + ["paths.output_dir=/tmp"])
        torch.manual_seed(123)  # a different fresh head: the loaded one must replace it
        model, injector, _ = build_injected(cfg)
        injector.load_pretrained(model, e["adapter"])
        model.eval()
        with torch.no_grad():
            out[key] = model(**make_batch()).logits.float().tolist()
    json.dump(out, open(sys.argv[2], "w"))
""")

PLAIN_LOAD = textwrap.dedent("""
    import json, sys, torch
    from transformers import AutoModelForSequenceClassification
    sys.path.insert(0, "tests")
    entries, out = json.load(open(sys.argv[1])), {}
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (3, 12), generator=gen); mask = torch.ones_like(ids)
    ids[1, 8:], mask[1, 8:] = 0, 0
    for key, e in entries.items():
        model = AutoModelForSequenceClassification.from_pretrained(e["export"]).eval()
        with torch.no_grad():
            out[key] = model(input_ids=ids, attention_mask=mask).logits.float().tolist()
    assert not any(m.startswith("ftlab") for m in sys.modules), "export must load without ftlab"
    json.dump(out, open(sys.argv[2], "w"))
""")


def _run_script(script: str, entries: dict, tmp_path: Path) -> dict:
    inp, out = tmp_path / "in.json", tmp_path / "out.json"
    inp.write_text(json.dumps(entries))
    proc = subprocess.run([sys.executable, "-c", script, str(inp), str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_saved_adapters_reload_in_a_fresh_process(tmp_path):
    if not TRAINED:
        pytest.skip("run together with the training-step matrix")
    entries = {f"{m}|{a}": e for (m, a), e in TRAINED.items()}
    got = _run_script(FRESH_LOAD, entries, tmp_path)
    for key, entry in entries.items():
        assert torch.allclose(torch.tensor(got[key]), torch.tensor(entry["logits"]), atol=1e-5), key


def test_merged_exports_load_in_plain_transformers(tmp_path):
    entries = {f"{m}|{a}": e for (m, a), e in TRAINED.items() if e["export"]}
    if not entries:
        pytest.skip("run together with the training-step matrix")
    got = _run_script(PLAIN_LOAD, entries, tmp_path)
    for key, entry in entries.items():
        assert torch.allclose(torch.tensor(got[key]), torch.tensor(entry["logits"]), atol=1e-4), key
