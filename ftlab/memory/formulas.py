"""The studies' memory formulas (shared/studies 000 §2.4, 001 §2.3) as functions of sizes alone:
bytes of weights, gradients and optimizer states, and of one transformer layer's stored
activations, by precision and optimizer. `ftlab.memory.estimate` applies them to a built model
and says what is approximated."""

from __future__ import annotations

from ftlab.errors import InvalidChoice, UserError

GiB = 2**30  # what the studies divide by when they write "GB"
PRECISIONS = {"32": "32-true", "32-true": "32-true", "64": "64-true", "64-true": "64-true",
              "16": "16-mixed", "16-mixed": "16-mixed", "bf16": "bf16-mixed", "bf16-mixed": "bf16-mixed",
              "16-true": "16-true", "bf16-true": "bf16-true"}


def normalize_precision(precision, accelerator: str = "auto") -> str:
    """Lightning's name of a precision; `auto` is what this machine's run would use (ftlab/precision.py)."""
    key = str(precision)
    if key == "auto":
        from ftlab.precision import resolve

        key = resolve(key, accelerator)[0]
    if key not in PRECISIONS:
        raise InvalidChoice("trainer.precision", precision, ["auto", *sorted(set(PRECISIONS.values()))])
    return PRECISIONS[key]


def activation_value_bytes(precision: str) -> int:
    return {"32-true": 4, "64-true": 8}.get(normalize_precision(precision), 2)


def optimizer_states(target: str, momentum: float = 0.0) -> tuple[int, bool, str | None]:
    """(states per trained parameter, has a per-tensor step counter, note) for an optimizer class."""
    name = str(target).rsplit(".", 1)[-1].lower()
    if name in ("adamw", "adam", "nadam", "radam", "adamax"):
        return 2, True, None
    if name == "bnb_adamw":  # bitsandbytes keeps its step counter as a Python int
        return 2, False, None
    if name == "sgd":
        return (1 if momentum else 0), False, None
    if name in ("adagrad", "rmsprop"):
        return 1 + (name == "rmsprop" and bool(momentum)), name == "adagrad", None
    return 2, True, f"optimizer {target} unknown: taken as Adam-like (2 states per parameter)"


def layer_activation_bytes(b: int, l: int, h: int, a: int, h_ff: int, *, value: int = 4, mask: int = 1,
                           hidden_dropout: bool = True, attention_dropout: bool = True, kv_heads: int | None = None,
                           head_dim: int | None = None, gated: bool = False, rms_norm: bool = False,
                           frozen: bool = False, fused_attention: bool = False, skip_attention: bool = False,
                           skip_ffn: bool = False, norm_value: int | None = None, attn_value: int | None = None,
                           x_copies: int = 1) -> int:
    """Stored activations of one transformer layer (study 001 eq. 1-5, items 1-15).

    Defaults give the study's 34blh + 9bal^2 + 8blh'. `frozen`: the layer's own Linears are not
    trained, so their inputs (x, the heads' concat, x2, GeLU(W1 x2)) are not kept. `kv_heads` /
    `head_dim` size Q, K, V (grouped-query attention, head_dim != h/a); `gated` (SwiGLU) keeps
    W1x, W3x, act(W1x) and their product; `rms_norm` (a Python RMSNorm with a trained weight) also
    keeps the normalised input. `fused_attention`: no l^2 tensors, the kernel's output and a b*a*l
    logsumexp instead. `skip_attention` / `skip_ffn`: in the lowest trained layer, the parts below
    its first trained module (nothing of them is needed by the backward). Mixed precision:
    `norm_value` (norm inputs, the fp32 residual stream), `attn_value` (Q, K, V and the l^2
    tensors; fp32 on CPU autocast), `x_copies` (autocast casts x once per Q/K/V Linear)."""
    hd = head_dim or h / a
    q, kv = a * hd, (kv_heads or a) * hd  # widths of Q and of K, V
    norm_value, attn_value = norm_value or value, attn_value or value
    hmask, amask = mask * hidden_dropout, (mask if mask == 1 else attn_value) * attention_dropout
    attention = attn_value * (q + 2 * kv) * b * l  # Q, K, V
    if fused_attention:
        attention += 4 * b * a * l + (attn_value * q * b * l if frozen else 0)  # logsumexp; output (else: the concat)
    else:
        attention += (2 * attn_value + amask) * b * a * l * l  # scores, softmax, dropout mask
    norms = (norm_value + value * (rms_norm and not frozen)) * b * l * h  # per norm: input (+ normalised input)
    ffn = value * ((3 if gated else 1) + (not frozen)) * b * l * h_ff  # pre-activation(s) (+ FFN-out input)
    total = (0 if skip_attention else attention) + (0 if skip_ffn else norms + hmask * b * l * h + ffn)  # mask2, LN1
    total += norms + hmask * b * l * h  # mask3, LN2
    if not frozen:
        total += value * b * l * ((x_copies + 1) * h + q)  # inputs of Q/K/V (x), of W1 (x2), of W^O (the concat)
    return int(total)


def static_bytes(total: int, trainable: int, *, weight: float = 4, grad: float = 4, states: int = 2,
                 state: float = 4, step_tensors: int = 0) -> dict[str, int]:
    """Weights of all parameters; gradients and optimizer states of the trained ones."""
    return {"weights": round(total * weight), "gradients": round(trainable * grad),
            "optimizer_states": round(trainable * states * state) + 4 * step_tensors}


def params_only(params: float, adapter_fraction: float | None = None, *, precision: str = "32-true",
                optimizer: str = "adamw", momentum: float = 0.9) -> dict:
    """Study 000 §2.4: a model known by its size only (no activations). Adapters add
    `adapter_fraction` x params, trained alone."""
    if not 0 < params < float("inf"):
        raise UserError(f"--params {params:g} must be positive", "e.g. --params 3e9")
    precision = normalize_precision(precision)
    states, _, note = optimizer_states(optimizer, momentum)
    width = 2 if precision.endswith("16-true") else 8 if precision == "64-true" else 4
    rows = {"full": static_bytes(round(params), round(params), weight=width, grad=width, states=states, state=width)}
    if adapter_fraction is not None:
        if not 0 < adapter_fraction < 1:
            raise UserError(f"--adapter-fraction {adapter_fraction:g} is out of range", "use a fraction in (0, 1), e.g. 0.05")
        extra = round(params * adapter_fraction)
        rows["adapters"] = static_bytes(round(params) + extra, extra, weight=width, grad=width, states=states, state=width)
    out = {"params": params, "adapter_fraction": adapter_fraction, "precision": precision, "optimizer": optimizer,
           "methods": {k: {"bytes": v, "total_bytes": sum(v.values())} for k, v in rows.items()},
           "notes": [n for n in (note,) if n]}
    if "adapters" in rows:
        out["saved_bytes"] = out["methods"]["full"]["total_bytes"] - out["methods"]["adapters"]["total_bytes"]
    return out


def format_table(parts: dict[str, int], total: int | None = None, title: str = "component") -> str:
    lines = [f"{title:<24}{'bytes':>18}{'GiB':>10}"]
    for name, value in parts.items():
        lines.append(f"{name:<24}{value:>18,}{value / GiB:>10.3f}")
    total = sum(parts.values()) if total is None else total
    lines.append(f"{'total':<24}{total:>18,}{total / GiB:>10.3f}")
    return "\n".join(lines)
