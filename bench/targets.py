"""The benchmark's targets, from its summary (bench/report.py): which row is ftlab's default here, and
each target's measured value, threshold, verdict and basis. bench/README.md lists them."""

from __future__ import annotations

FP32, BF16 = "32-true", "bf16-mixed"  # (bench.common's; the report modules import nothing else of the bench)
PAIRS = (("ftlab-full", "plain"), ("ftlab-full-bf16", "plain-bf16"))  # identical batches, one fp32 and one bf16


def contender_precision(name: str) -> str:
    return BF16 if name.endswith("-bf16") else FP32


def ftlab_default(summary: dict, peak: dict, config: dict) -> dict:
    """The row of ftlab's shipped default configuration: the trainer.precision it gives full fine-tuning
    (conf/peft/full.yaml, else base.yaml; recorded by bench/run.py), with `auto` resolved as
    ftlab.precision does (bf16-mixed where the machine multiplies bf16 natively, else fp32)."""
    conf = config.get("ftlab_conf_precision") or FP32
    if conf == "auto":
        precision = BF16 if peak["native_bf16"] else FP32
        why = f"trainer.precision=auto: {precision} ({peak['native_bf16_why']})"
    else:
        precision, why = (BF16 if conf in (BF16, "bf16") else FP32), f"trainer.precision={conf}, ftlab's default"
    name = "ftlab-full-bf16" if precision == BF16 else "ftlab-full"
    if name not in summary["window"]:
        other = "ftlab-full" if name == "ftlab-full-bf16" else "ftlab-full-bf16"
        name, why = other, why + f"; {name} did not run, {other} stands in"
    return {"contender": name, "why": why}


def _get(summary: dict, phase: str, name: str, key: str):
    return summary.get(phase, {}).get(name, {}).get(key)


def hf_rows(rows: dict) -> dict:
    return {n: r for n, r in rows.items() if n.startswith("hf-")}


def targets(res: dict, config: dict) -> list[dict]:
    s, rows, tol = res["summary"], [], config["acc_tol"]

    def add(target, value, threshold, ok, basis):
        rows.append({"target": target, "measured": value, "threshold": threshold,
                     "pass": None if value is None else bool(ok(value)), "basis": basis})

    def ratio(a, b):
        return a / b if a is not None and b else None

    default = res["ftlab_default"]["contender"]
    ep = "epoch" if _get(s, "epoch", default, "train_samples_per_s") else "window"
    ftlab_rate = _get(s, ep, default, "train_samples_per_s")
    add(f"train samples/s: ftlab default ({default}) / HF studies' style (pad 128)",
        ratio(ftlab_rate, _get(s, "window", "hf-pad128", "train_samples_per_s")), ">= 4", lambda v: v >= 4,
        f"ftlab {ep}; pad-128 window (every full batch has the same {config['batch_size']}x128 shape, "
        "so its window rate is its epoch rate)")

    # the HF Trainer's fastest configuration measured here, fp32 or bf16, over the same phase
    hf_ep = "epoch" if ep == "epoch" and hf_rows(s.get("epoch", {})) else "window"
    hf = hf_rows(s.get(hf_ep, {}))
    best = max(hf, key=lambda n: hf[n]["train_samples_per_s"]) if hf else None
    gap = None
    if best:
        a, b = _get(s, hf_ep, default, "test_accuracy"), hf[best].get("test_accuracy")
        gap = None if a is None or b is None else abs(a - b)
    value = ratio(_get(s, hf_ep, default, "train_samples_per_s"), hf[best]["train_samples_per_s"] if best else None)
    add(f"train samples/s: ftlab default ({default}) / fastest HF Trainer, equal test accuracy", value,
        f">= 1.5 and |Δacc| <= {tol}", lambda v: v >= 1.5 and gap is not None and gap <= tol,
        f"{hf_ep}, medians; fastest HF: {best or 'no HF row'}; |Δacc| = " + ("n/a" if gap is None else f"{gap:.4f}")
        + f"; ftlab default: {res['ftlab_default']['why']}")

    same = res["identical_batches"]
    for ftlab_name, plain_name in PAIRS:
        for phase in ("window", "epoch"):
            value = ratio(_get(s, phase, ftlab_name, "step_ms"), _get(s, phase, plain_name, "step_ms"))
            if value is not None:
                add(f"time/step: {ftlab_name} / {plain_name}, identical batches ({phase})", value, "<= 1.02",
                    lambda v: v <= 1.02, f"same batches: {same.get(f'{ftlab_name}/{plain_name}', {}).get(phase)}")
    d = res["data_setup"]
    add("data set-up: cold / warm tokenization cache (ftlab)", d["speedup"], ">= 10", lambda v: v >= 10,
        f"cold {d['cold_median']:.3f}s (n={len(d['cold_seconds'])}), warm "
        + (f"{d['warm_median']:.3f}s (n={len(d['warm_seconds'])})" if d["warm_median"] else "n/a"))
    add("peak RSS: ftlab LoRA / ftlab full", ratio(_get(s, "window", "ftlab-lora", "peak_rss_gib"),
        _get(s, "window", "ftlab-full", "peak_rss_gib")), "<= 1", lambda v: v <= 1, "window runs, fp32")
    hf_eval = {n: r["eval_samples_per_s"] for n, r in hf_rows(s["window"]).items() if r.get("eval_samples_per_s")}
    fastest_eval = max(hf_eval, key=hf_eval.get) if hf_eval else None
    add(f"eval samples/s: ftlab default ({default}) / fastest HF Trainer",
        ratio(_get(s, "window", default, "eval_samples_per_s"), hf_eval.get(fastest_eval)), ">= 1", lambda v: v >= 1,
        f"test split, all runs; fastest HF: {fastest_eval or 'no HF row'}")
    add("test accuracy gap, ftlab default vs fastest HF Trainer (comparability)", gap, f"<= {tol}",
        lambda v: v <= tol, f"{hf_ep}: {default} vs {best or 'no HF row'}")
    add("make bench duration (s)", res["meta"]["duration_seconds"], "< 1500", lambda v: v < 1500,
        "this run's settings" + (" (--quick: not the real figure)" if config["quick"] else ""))
    return rows
