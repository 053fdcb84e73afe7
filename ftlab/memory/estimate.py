"""Training-memory estimate: weights, gradients, optimizer states and activations, in bytes.

Follows the studies' analyses (shared/studies 000 §2.4 and 001 §2.3), in 001's notation: N
parameters, h hidden size, a attention heads, h' FFN inner size, d layers, b batch, l sequence.

* Full fine-tuning, fp32 AdamW: 16N bytes (weight, gradient, two moments) plus per layer
  34blh + 9bal^2 + 8blh' bytes of stored activations (4-byte values, 1-byte dropout masks).
* Adapters: 4N + 16N_adapter, i.e. every weight once plus gradient and two moments of the trained
  ones (000's 3e9*4B*1.05 + 3*3e9*4B*0.05), plus the adapters' own activations (001: per adapter
  4blh + 8blh_adapter: its input, the bottleneck before and after the non-linearity).

What is approximated (and where this departs from the studies):
* PEFT activations: 001 counts only the adapters' activations, but the backward pass must still
  cross every frozen layer above the lowest trained one. Those layers store what the backward
  needs for the *input* gradients (Q, K, V, the attention matrices and their mask, the layer-norm
  inputs, the FFN pre-activation, the dropout masks) but not the inputs of frozen Linears, which
  only weight gradients need: 22blh + 9bal^2 + 4blh' per layer in fp32. On top come the method's
  own tensors, counted generically: the input of every trained Linear inside a layer (LoRA's A
  and B inputs, an adapter's down and up inputs), the input of a non-linearity inside a trained
  module (the adapter's bottleneck), and LoRA's dropout masks. Layers below the lowest trained
  one store nothing.
* Device: dropout masks are 1-byte bools on CUDA (the study) but tensors of their input's dtype
  on CPU (`at::dropout` has no fused CPU kernel). The l^2 terms assume eager attention, as the
  study does, which is also what SDPA does on CPU with attention dropout (math path); SDPA on
  CUDA, or on CPU without attention dropout, runs a fused kernel that keeps its output and a
  b*a*l fp32 logsumexp instead (assumed, not measured, for CUDA).
* In the lowest trained layer, the parts below its first trained module (by module name: Q/K/V,
  attention output, FFN in, FFN out) store nothing; that layer's own input needs no gradient,
  which saves a little more (its Q, LoRA's dropout masks) that is not subtracted.
* Full fine-tuning also stores the embeddings' layer-norm input and dropout mask. The pooler and
  head, the loss, backward temporaries, allocator slack and the CUDA context are left out.
* Precision: `*-mixed` keeps fp32 weights, gradients and states, stores activations in 16 bits
  except the fp32 residual stream (the norm inputs) and, on CPU's math attention, Q/K/V and the
  l^2 tensors; autocast casts x once per Q/K/V Linear, and keeps 16-bit copies of the weights of
  the Linears the backward goes through (a separate row). `*-true` 16-bit stores everything in
  16 bits. 4-bit (QLoRA) weights of the Linears inside the layers take 0.5 byte plus one fp32
  absmax per 64 weights (8-bit absmax + second-level constants with double quant).
* Optimizer: AdamW/Adam keep 2 states per trained parameter in its dtype plus a 4-byte step per
  tensor; SGD keeps 1 (momentum) or 0; an unknown optimizer is taken as Adam-like.

Checked against the bytes autograd really saves (tiny BERT/DistilBERT/Llama and MiniLM, full,
LoRA, Houlsby, Pfeiffer, fp32 and bf16-mixed, on CPU): within about 10%.
"""


from __future__ import annotations

import re

from torch import nn

from ftlab.errors import UserError
from ftlab.memory.formulas import activation_value_bytes, layer_activation_bytes, normalize_precision, optimizer_states
from ftlab.models.structure import hidden_size, is_4bit, logical_numel, transformer_blocks

_ACT_TYPES = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Mish)

# which part of a layer a trained module sits in: 0 attention in, 1 attention out, 2 FFN in, 3 FFN out
_STAGES = [(1, r"attention\.output\.dense|o_proj|out_lin|out_proj|attn\.c_proj"),
           (0, r"query|key|value|q_proj|k_proj|v_proj|q_lin|k_lin|v_lin|qkv_proj|c_attn|Wqkv|in_proj"),
           (2, r"intermediate\.dense|gate_proj|up_proj|gate_up_proj|lin1|fc1|c_fc"),
           (3, r"output\.dense|down_proj|lin2|fc2|mlp\.c_proj")]


def first_stage(block: nn.Module) -> int:
    """The earliest part of `block` holding a trained parameter (0, conservative, when unknown)."""
    stages = []
    for name, p in block.named_parameters():
        if p.requires_grad:
            found = [st for st, pattern in _STAGES if re.search(rf"(^|\.)({pattern})(\.|$)", name)]
            stages.append(found[0] if found else 0)
    return min(stages, default=0)


def _get(config, *keys, default=None):
    return next((getattr(config, k) for k in keys if isinstance(getattr(config, k, None), (int, float))), default)


def model_dims(config) -> dict:
    """d, h, a, h' (+ kv heads, dropout flags) from a BERT / RoBERTa / DistilBERT / Llama-style config."""
    from ftlab.models.backbone import ATTENTION_DROPOUT_KEYS, HIDDEN_DROPOUT_KEYS

    d, h = _get(config, "num_hidden_layers", "n_layers", "n_layer", "num_layers"), hidden_size(config)
    a = _get(config, "num_attention_heads", "n_heads", "n_head")
    if None in (d, h, a):
        raise UserError(f"cannot read layers / hidden size / heads from the {getattr(config, 'model_type', '?')} config",
                        "estimate by size instead: ftlab estimate --params <N>")
    head_dim = _get(config, "head_dim", default=None)
    return {"layers": int(d), "hidden": int(h), "heads": int(a), "head_dim": int(head_dim) if head_dim else None,
            "ffn": int(_get(config, "intermediate_size", "hidden_dim", "n_inner", "ffn_dim", default=4 * h)),
            "kv_heads": int(_get(config, "num_key_value_heads", default=a)),
            "hidden_dropout": bool(_get(config, *HIDDEN_DROPOUT_KEYS, default=0.0)),
            "attention_dropout": bool(_get(config, *ATTENTION_DROPOUT_KEYS, default=0.0))}


def layer_stack(model: nn.Module, layers: int) -> tuple[str, nn.ModuleList]:
    """The transformer blocks (the stack adapters and FSDP see), checked against the config's `layers`."""
    name, blocks = transformer_blocks(model, "estimate by size: ftlab estimate --params <N>")
    if len(blocks) != layers:
        raise UserError(f"{type(model).__name__}: its layer stack {name} has {len(blocks)} layers, its config {layers}",
                        "estimate by size: ftlab estimate --params <N>")
    return name, blocks


def method_activation_bytes(block: nn.Module, tokens: int, value: int, mask: int = 1) -> int:
    """Tensors a PEFT method adds to a frozen layer: inputs of trained Linears, inputs of
    non-linearities inside trained modules, LoRA dropout masks."""
    total = 0
    for module in block.modules():
        own = list(module.parameters(recurse=False))
        if isinstance(module, nn.Linear) and any(p.requires_grad for p in own):
            total += tokens * module.in_features * value
        trained_children = [m for m in module.children() if isinstance(m, nn.Linear) and m.weight.requires_grad]
        acts = [m for m in module.children() if isinstance(m, _ACT_TYPES)]
        if trained_children and acts:  # adapter: act(down(x)) keeps down's output
            total += len(acts) * tokens * trained_children[0].out_features * value
        drops = getattr(module, "lora_dropout", None)
        if isinstance(drops, nn.ModuleDict) and hasattr(module, "in_features"):
            total += sum(tokens * module.in_features * mask for d in drops.values() if getattr(d, "p", 0) > 0)
    return total


def _state_bytes_8bit(numel: int) -> float:
    """bitsandbytes 8-bit states: 1 byte per value plus a float32 absmax per block of 256 and a 256-entry
    float32 quantization map per tensor; tensors under 4096 values keep 32-bit states."""
    return 4.0 if numel < 4096 else 1 + 4 / 256 + 256 * 4 / numel


def estimate_model(model: nn.Module, *, batch_size: int, max_length: int, precision="32-true",
                   optimizer: str = "torch.optim.AdamW", momentum: float = 0.0, quant_4bit: dict | None = None,
                   device: str = "cuda", optimizer_bits: int = 32) -> dict:
    """Estimate for a built (possibly meta-device) and injected model trained on `device` ("cuda"
    or "cpu"); `quant_4bit` ({"double_quant": bool}) when the layers' Linears are loaded in 4 bits."""
    if batch_size < 1 or max_length < 1:
        raise UserError(f"batch size {batch_size} / length {max_length} must be positive", "e.g. --batch-size 32 --max-length 128")
    precision = normalize_precision(precision, "cuda" if device == "cuda" else "cpu")
    value, mixed, half = activation_value_bytes(precision), precision.endswith("mixed"), precision.endswith("16-true")
    dims = model_dims(model.config)
    stack_name, blocks = layer_stack(model, dims["layers"])
    states, has_step, note = optimizer_states(optimizer, momentum)
    quant_per_param = 0.5 + (1 / 64 + 4 / (64 * 256) if (quant_4bit or {}).get("double_quant") else 4 / 64)
    quantized = {id(m.weight) for m in blocks.modules() if isinstance(m, nn.Linear) and not m.weight.requires_grad} if quant_4bit else set()
    params = {id(p): p for p in model.parameters()}.values()
    weights = grads = opt = 0.0
    trainable = total = tensors = 0
    for p in params:
        n, width = logical_numel(p), (2 if half else p.element_size())
        total += n
        weights += n * (quant_per_param if id(p) in quantized or is_4bit(p) else width)
        if p.requires_grad:
            trainable, tensors = trainable + n, tensors + 1
            grads += n * width
            opt += n * states * (width if optimizer_bits == 32 else _state_bytes_8bit(n))
    opt += 4 * tensors * has_step
    trained_layers = [i for i, blk in enumerate(blocks) if any(p.requires_grad for p in blk.parameters())]
    below = any(p.requires_grad for n, p in model.named_parameters()
                if not n.startswith(stack_name + ".") and re.search(r"embed|wte|wpe", n))
    first = 0 if below else (trained_layers[0] if trained_layers else len(blocks))
    b, l, tokens = batch_size, max_length, batch_size * max_length
    mask = 1 if device == "cuda" else value
    attn = getattr(model.config, "_attn_implementation", None) or "eager"
    # SDPA runs a fused kernel on CUDA, and on CPU unless attention dropout forces the math path
    fused = (attn == "sdpa" or "flash" in attn) and (device == "cuda" or not dims["attention_dropout"])
    gated = any(n.endswith(("gate_proj", "gate_up_proj")) for n, _ in blocks[0].named_modules())
    rms = any("RMSNorm" in type(m).__name__ for m in blocks[0].modules())
    shape = dict(h=dims["hidden"], a=dims["heads"], h_ff=dims["ffn"], value=value, kv_heads=dims["kv_heads"],
                 head_dim=dims["head_dim"], gated=gated, rms_norm=rms, hidden_dropout=dims["hidden_dropout"],
                 attention_dropout=dims["attention_dropout"], mask=mask, fused_attention=fused)
    if mixed:  # autocast: fp32 residual stream / norm inputs, x cast per Q/K/V Linear, attention fp32 on CPU
        separate_qkv = sum(isinstance(m, nn.Linear) and m.in_features == dims["hidden"] for m in blocks[0].modules()) > 3
        shape.update(norm_value=4, attn_value=4 if device == "cpu" and not fused else 2, x_copies=3 if separate_qkv else 1)
    acts = 0
    if below and any(isinstance(m, nn.LayerNorm) for n, m in model.named_modules() if "embed" in n):
        acts += tokens * dims["hidden"] * (value + mask * dims["hidden_dropout"])  # embeddings' LN input, mask
    per_layer = []
    for i, blk in enumerate(list(blocks)[first:]):
        if all(p.requires_grad for p in blk.parameters()):
            per_layer.append(layer_activation_bytes(b, l, frozen=False, **shape))
        else:
            stage = first_stage(blk) if i == 0 and not below else 0
            per_layer.append(layer_activation_bytes(b, l, frozen=True, skip_attention=stage >= 1, skip_ffn=stage >= 3, **shape)
                             + method_activation_bytes(blk, tokens, value, mask))
    checkpointing = any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())
    recompute = 0
    if checkpointing and per_layer:  # each layer keeps its input; the backward recomputes one layer at a time
        acts += len(per_layer) * tokens * dims["hidden"] * value
        recompute = max(per_layer)
    else:
        acts += sum(per_layer)
    parts = {"weights": round(weights), "gradients": round(grads), "optimizer_states": round(opt), "activations": acts}
    if recompute:
        parts["checkpoint_recompute"] = recompute  # one layer's activations, alive during its backward only
    if mixed:  # bf16/fp16 copies of the Linear weights the backward goes through
        parts["autocast_weight_copies"] = 2 * sum(m.weight.numel() for i, blk in enumerate(blocks) if i >= first
                                                  for m in blk.modules() if isinstance(m, nn.Linear))
    return {"precision": precision, "optimizer": str(optimizer).rsplit(".", 1)[-1], "batch_size": b, "max_length": l,
            "device": device, "attention": f"{attn} ({'fused: no l^2 tensors' if fused else 'l^2 tensors stored'})",
            "params": {"total": total, "trainable": trainable},
            "dims": {**{k: v for k, v in dims.items() if not k.endswith("dropout")}, "gated_ffn": gated,
                     "layers_in_backward": len(blocks) - first, "weights_4bit": quant_4bit is not None,
                     "gradient_checkpointing": checkpointing},
            "bytes": parts, "total_bytes": sum(parts.values()), "notes": [n for n in (note,) if n],
            # reference: study 001's full fine-tuning activations, d(34blh + 9bal^2 + 8blh') (fp32, eager, CUDA)
            "study_formula_activations": len(blocks) * layer_activation_bytes(b, l, dims["hidden"], dims["heads"], dims["ffn"])}
