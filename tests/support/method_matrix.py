"""The method matrix's check of one (method, architecture) pair, shared by tests/methods/test_peft_matrix.py
(every `peft` choice, FTLAB_CONFIG_PATH's included) and tests/config/test_extending.py (a method added as
one file and one YAML), so that a new method gets exactly the matrix's checks.

For a pair: two optimizer steps change exactly the trainable parameters (the head among them) and
nothing frozen; the adapter `save_pretrained` writes reloads in a fresh process with identical
logits (`FRESH_LOAD`); a mergeable method's export loads in plain transformers, ftlab not imported
(`PLAIN_LOAD`), with the same logits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ftlab.config import build, compose
from ftlab.data.task import classification
from ftlab.errors import UserError

REPO = Path(__file__).resolve().parents[2]
TASK = classification(["a", "b", "c"])
# hidden size 32 / 16 leaves a 2-unit bottleneck whose ReLUs can all be dead on the one [CLS] row
# the last layer's gradient flows through: widen it so "every adapter weight moves" is a fair test
METHOD_OVERRIDES = {"houlsby": ["peft.reduction_factor=2"], "pfeiffer": ["peft.reduction_factor=2"]}


def make_batch(vocab: int = 1000) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (3, 12), generator=gen)
    mask = torch.ones_like(ids)
    ids[1, 8:], mask[1, 8:] = 0, 0  # one right-padded example (pad id 0)
    return {"input_ids": ids, "attention_mask": mask}


def save_tiny_base(arch: str, folder: Path) -> Path:
    """A random base model (no head) of the tiny `arch`, saved as a "pretrained" folder, so that the
    head is freshly initialised exactly as with real weights."""
    from transformers import AutoModel

    backbone = build(compose([f"model={arch}", "paths.output_dir=/tmp"]), "model")
    tokenizer = backbone.load_tokenizer()
    torch.manual_seed(0)
    AutoModel.from_config(backbone.model_config(TASK, tokenizer)).save_pretrained(folder)
    return folder


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


def train_save_and_export(cfg, pair_overrides: list[str], out: Path, refused: str | None = None) -> dict | None:
    """The in-process half of the matrix for one pair; returns what the fresh-process checks need
    (None when the method refuses the model, with the reason `refused`, as it must)."""
    if refused is not None:
        with pytest.raises(UserError, match=refused):
            build_injected(cfg)
        return None
    model, injector, tokenizer = build_injected(cfg)
    batch = make_batch()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    report = injector.trainable_report(model)
    assert report.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) or injector.name == "qlora"

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
    injector.save_pretrained(model, out / "adapter")
    entry = {"overrides": pair_overrides, "adapter": str(out / "adapter"), "logits": logits.tolist(), "export": None}
    if injector.can_merge:
        injector.export(model, out / "export", tokenizer)
        entry["export"] = str(out / "export")
    else:
        with pytest.raises(UserError, match="cannot be merged"):
            injector.merge(model)
    return entry


FRESH_LOAD = textwrap.dedent("""
    import json, sys, torch
    sys.path.insert(0, "tests")
    from ftlab.config import compose
    from support.method_matrix import build_injected, make_batch
    entries, out = json.load(open(sys.argv[1])), {}
    for key, e in entries.items():
        cfg = compose(e["overrides"] + ["paths.output_dir=/tmp"])
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


def run_script(script: str, entries: dict, tmp_path: Path) -> dict:
    """Run FRESH_LOAD or PLAIN_LOAD over `entries` in a new interpreter (this environment's)."""
    inp, out = tmp_path / "in.json", tmp_path / "out.json"
    inp.write_text(json.dumps(entries))
    proc = subprocess.run([sys.executable, "-c", script, str(inp), str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def check_reloads(entries: dict, tmp_path: Path) -> None:
    """Every saved adapter reloads in a fresh process to the logits it was saved with."""
    got = run_script(FRESH_LOAD, entries, tmp_path)
    for key, entry in entries.items():
        assert torch.allclose(torch.tensor(got[key]), torch.tensor(entry["logits"]), atol=1e-5), key


def check_plain_exports(entries: dict, tmp_path: Path) -> None:
    """Every export loads in plain transformers to the same logits."""
    exported = {k: e for k, e in entries.items() if e["export"]}
    got = run_script(PLAIN_LOAD, exported, tmp_path)
    for key, entry in exported.items():
        assert torch.allclose(torch.tensor(got[key]), torch.tensor(entry["logits"]), atol=1e-4), key
