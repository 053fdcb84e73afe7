"""The injector contract, for every method choice x tiny BERT, RoBERTa, DistilBERT, Llama, Gemma, Qwen2.

The methods are the `peft` group's choices (ftlab/conf/peft and FTLAB_CONFIG_PATH's), so a new
method is in the matrix with nothing to add here; what is checked per pair is in
tests/support/method_matrix.py. Each tiny backbone is saved once as a "pretrained" folder (base
model only), so the head is freshly initialised exactly as with real weights.
"""

from __future__ import annotations

import pytest
from hydra.utils import get_class

from ftlab.config import group_options
from support.method_matrix import check_plain_exports, check_reloads, overrides, save_tiny_base, train_save_and_export

METHODS = group_options("peft")
ARCHS = ["tiny_bert", "tiny_roberta", "tiny_distilbert", "tiny_llama", "tiny_gemma", "tiny_qwen2"]
# (method, arch) pairs the injector refuses at start, with the reason it must give
REFUSED = {
    ("bitfit", "tiny_llama"): "bias",
    ("prefix", "tiny_distilbert"): "past key values",
    ("prompt", "tiny_llama"): "padding",
    ("bitfit", "tiny_gemma"): "bias",
    ("prompt", "tiny_gemma"): "padding",
    ("prompt", "tiny_qwen2"): "padding",
}


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory):
    """arch -> folder holding a saved random base model (no head)."""
    return {arch: save_tiny_base(arch, tmp_path_factory.mktemp(arch)) for arch in ARCHS}


@pytest.fixture(scope="session")
def matrix_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("matrix")


TRAINED: dict[tuple[str, str], dict] = {}


def test_every_method_choice_builds_the_class_registered_under_its_name(compose):
    for method in METHODS:
        cls = get_class(compose(f"peft={method}").peft._target_)
        assert cls.name == method, (method, cls)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", METHODS)
def test_training_step_changes_exactly_the_trainable_parameters(compose, tiny_pretrained, matrix_dir, method, arch):
    pair = overrides(method, arch, tiny_pretrained[arch])
    entry = train_save_and_export(compose(*pair), pair, matrix_dir / f"{method}-{arch}", REFUSED.get((method, arch)))
    if entry is not None:
        TRAINED[(method, arch)] = entry


def test_saved_adapters_reload_in_a_fresh_process(tmp_path):
    if not TRAINED:
        pytest.skip("run together with the training-step matrix")
    check_reloads({f"{m}|{a}": e for (m, a), e in TRAINED.items()}, tmp_path)


def test_merged_exports_load_in_plain_transformers(tmp_path):
    if not any(e["export"] for e in TRAINED.values()):
        pytest.skip("run together with the training-step matrix")
    check_plain_exports({f"{m}|{a}": e for (m, a), e in TRAINED.items()}, tmp_path)
