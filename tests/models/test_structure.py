"""One reading of a model's structure for adapters, FSDP and the memory estimate: the layer stack,
the hidden size, what is 4-bit; the optimizer that really runs; the meta-device build."""

from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.strategies import FSDPStrategy
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from ftlab.config import build
from ftlab.distributed import wrap_each_layer
from ftlab.errors import UserError
from ftlab.memory.estimate import layer_stack
from ftlab.models.optimizers import TORCH_ADAMW, bnb_adamw, optimizer_that_runs
from ftlab.models.structure import (block_class, find_transformer_blocks, hidden_size, is_4bit, logical_numel,
                                    transformer_blocks, weights_4bit)

TINY = dict(num_labels=2, vocab_size=100, pad_token_id=0, num_hidden_layers=2, num_attention_heads=2)
BNB_ADAMW = "ftlab.models.optimizers.bnb_adamw"


def tiny(arch: str, **sizes) -> nn.Module:
    return AutoModelForSequenceClassification.from_config(AutoConfig.for_model(arch, **TINY, **sizes))


@pytest.mark.parametrize(("arch", "sizes", "stack", "layer"), [
    ("bert", dict(hidden_size=16, intermediate_size=32), "bert.encoder.layer", "BertLayer"),
    ("distilbert", dict(dim=16, hidden_dim=32, n_layers=2, n_heads=2), "distilbert.transformer.layer", "TransformerBlock"),
    ("llama", dict(hidden_size=16, intermediate_size=32, num_key_value_heads=1), "model.layers", "LlamaDecoderLayer"),
])
def test_the_layer_stack_of_each_family(arch, sizes, stack, layer):
    model = tiny(arch, **sizes)
    name, blocks = find_transformer_blocks(model)
    assert (name, len(blocks), type(blocks[0]).__name__) == (stack, 2, layer)
    assert block_class(model).__name__ == layer
    assert hidden_size(model.config) == 16
    assert layer_stack(model, 2) == (name, blocks)  # the estimate's stack is this one, checked against the config
    with pytest.raises(UserError, match=f"{stack} has 2 layers, its config 3"):
        layer_stack(model, 3)


class _Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.ffn = nn.Linear(width, width)


class _Distracted(nn.Module):
    """A stack of 2 blocks among lists that are not one: longer lists of bare Linears, of mixed
    classes, of blocks without Linears, and a same-length list of smaller blocks."""

    def __init__(self):
        super().__init__()
        self.heads = nn.ModuleList([nn.Linear(4, 4) for _ in range(5)])
        self.mixed = nn.ModuleList([_Block(4), nn.Sequential(nn.Linear(4, 4)), _Block(4)])
        self.norms = nn.ModuleList([nn.LayerNorm(4) for _ in range(4)])
        self.small = nn.ModuleList([_Block(2), _Block(2)])
        self.layers = nn.ModuleList([_Block(8), _Block(8)])


def test_the_stack_is_the_longest_list_of_one_block_class_holding_linears():
    model = _Distracted()
    assert find_transformer_blocks(model) == ("layers", model.layers)
    assert block_class(model) is _Block


def test_no_stack_is_none_for_fsdp_and_an_error_with_the_callers_fix():
    flat = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    assert find_transformer_blocks(flat) is None and block_class(flat) is None
    with pytest.raises(UserError, match="no repeated transformer blocks") as err:
        transformer_blocks(flat, "use peft=lora")
    assert err.value.fix == "use peft=lora"


def test_fsdp_wraps_each_layer_of_the_stack_and_leaves_a_given_policy():
    strategy = FSDPStrategy()
    wrap_each_layer(strategy, tiny("bert", hidden_size=16, intermediate_size=32))
    assert {c.__name__ for c in strategy.kwargs["auto_wrap_policy"]._module_classes} == {"BertLayer"}
    given = FSDPStrategy(auto_wrap_policy={nn.Linear})
    wrap_each_layer(given, tiny("bert", hidden_size=16, intermediate_size=32))
    assert given.kwargs["auto_wrap_policy"]._module_classes == {nn.Linear}  # Lightning made the set a policy


def test_hidden_size_keys_of_each_family():
    assert hidden_size(AutoConfig.for_model("gpt2", n_embd=24)) == 24
    assert hidden_size(AutoConfig.for_model("distilbert", dim=12)) == 12
    assert hidden_size(SimpleNamespace(d_model=40)) == 40
    assert hidden_size(SimpleNamespace(hidden_size=8.0)) is None  # not an int: not a width
    assert hidden_size(None) is None


def test_4bit_weights_count_their_logical_values():
    packed = torch.zeros(16, 1, dtype=torch.uint8)  # 32 4-bit values, two a byte
    packed.quant_state = SimpleNamespace(shape=torch.Size([4, 8]))
    plain = torch.zeros(4, 8)
    assert is_4bit(packed) and not is_4bit(plain)
    assert logical_numel(packed) == 32 == logical_numel(plain) and packed.numel() == 16


def test_4bit_loading_is_read_from_the_quantization_config():
    assert weights_4bit({}) is None
    assert weights_4bit({"quantization_config": SimpleNamespace(load_in_4bit=False, load_in_8bit=True)}) is None
    four = SimpleNamespace(load_in_4bit=True, bnb_4bit_use_double_quant=True)
    assert weights_4bit({"quantization_config": four}) == {"double_quant": True}
    four.bnb_4bit_use_double_quant = False
    assert weights_4bit({"quantization_config": four, "device_map": "cpu"}) == {"double_quant": False}


@pytest.mark.parametrize(("target", "bits", "paged", "device", "runs"), [
    (BNB_ADAMW, 32, True, "cpu", (TORCH_ADAMW, False)),  # paged 32-bit on CPU: torch's AdamW
    (BNB_ADAMW, 8, True, "cpu", (BNB_ADAMW, False)),  # paged 8-bit on CPU: unpaged 8-bit
    (BNB_ADAMW, 32, True, "cuda", (BNB_ADAMW, True)),  # CUDA pages
    (BNB_ADAMW, 8, False, "cpu", (BNB_ADAMW, False)),
    (TORCH_ADAMW, 32, True, "cpu", (TORCH_ADAMW, True)),  # `paged` means nothing to other optimizers
])
def test_the_optimizer_that_runs(target, bits, paged, device, runs):
    assert optimizer_that_runs(target, bits, paged, device) == runs


def test_bnb_adamw_builds_what_the_estimate_prices(caplog):
    built = bnb_adamw([nn.Parameter(torch.randn(4, 4))], bits=32, paged=True)
    assert type(built) is torch.optim.AdamW and "runs unpaged" in caplog.text


def test_meta_build_has_the_real_builds_parameters_and_head(compose, tmp_path):
    cfg = compose("model=tiny_llama")
    backbone, task = build(cfg, "model"), build(cfg, "dataset").task()
    tokenizer = backbone.load_tokenizer()
    meta, real = backbone.build_on_meta(task, tokenizer), backbone.build(task, tokenizer)
    assert all(p.is_meta for p in meta.model.parameters()) and not any(p.is_meta for p in real.model.parameters())
    shapes = {n: (p.shape, p.dtype) for n, p in real.model.named_parameters()}
    assert {n: (p.shape, p.dtype) for n, p in meta.model.named_parameters()} == shapes
    assert meta.new_parameters == real.new_parameters == {"score.weight"}
    checkpointed = build(compose("model=tiny_llama", "model.gradient_checkpointing=true"), "model")
    assert checkpointed.build_on_meta(task, tokenizer).model.is_activation_checkpointing  # as the run trains it
    assert build(compose(f"+model.cache_dir={tmp_path}"), "model").cache_dir == tmp_path
