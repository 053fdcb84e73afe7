"""The GPU check's first job, `python -m bench.gpu_check.prepare SPEC` (in the dry run: in the shared
process): save the random models the later jobs load, and measure the machine's bf16 matmul peak.
A job of its own so that the orchestrating process never holds a CUDA context or a model, and the
dry run pays for its heavy imports once. Writes SPEC["out"]: {"models": ..., "peak": ...}."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.common import write_json
from bench.gpu_check import H200_BF16_DENSE_TFLOPS


def save_models(models: dict, tokenizer: str) -> dict:
    """Each random model saved as a "pretrained" folder (weights without a head, as a checkpoint is,
    and the tokenizer): the benchmark's encoder, so that ftlab and the HF Trainer start from the same
    weights, and QLoRA's decoder (4-bit loading needs a checkpoint to quantise). Built by ftlab's own
    Backbone from `architecture` + `config_overrides`, as model=tiny_roberta builds its model; the
    classifier's parameter counts (bench.common.param_counts) give the MFU's N."""
    import torch
    import transformers

    from bench.common import param_counts
    from ftlab.data.sources.absa import SemEvalAbsaSource
    from ftlab.models.backbone import Backbone

    transformers.utils.logging.disable_progress_bar()
    task, out = SemEvalAbsaSource(domain="restaurant").task(), {}  # restaurant_sup's labels, as the runs see them
    for key, m in models.items():
        backbone = Backbone(architecture=m["architecture"], config_overrides=m["config"], tokenizer=tokenizer)
        tok = backbone.load_tokenizer()
        torch.manual_seed(0)
        model = backbone.build(task, tok).model
        model.base_model.save_pretrained(m["dir"])
        tok.save_pretrained(m["dir"])
        out[key] = {**m, "params": param_counts(model)}
    return out


def measure_peak(n: int, dry_run: bool, threads: int) -> dict:
    """The bf16 matmul rate of an n³ product: on the GPU, CUDA events around each of 10 products
    after 3 warm-ups; in the dry run the CPU benchmark's own timer (bench.contenders.time_product)."""
    import torch

    if dry_run:
        from bench.contenders import time_product

        torch.set_num_threads(threads)
        r = time_product({"m": n, "k": n, "n": n, "layout": "mm"}, torch.bfloat16, 5, 0.02)
        return {"device": "cpu", "n": n, "how": "bench.contenders.time_product, best of 5", "spec_tflops": None,
                "tflops_best": r["gflops_best"] / 1e3, "tflops_median": r["gflops_median"] / 1e3}
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    out = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        torch.mm(a, b, out=out)
    torch.cuda.synchronize()
    seconds = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.mm(a, b, out=out)
        end.record()
        end.synchronize()
        seconds.append(start.elapsed_time(end) / 1e3)
    tflop, name = 2 * n**3 / 1e12, torch.cuda.get_device_name()
    return {"device": name, "n": n, "how": "random normal bf16, CUDA events, best / median of 10 after 3 warm-ups",
            "spec_tflops": H200_BF16_DENSE_TFLOPS if "H200" in name else None, "seconds": seconds,
            "tflops_best": tflop / min(seconds), "tflops_median": tflop / sorted(seconds)[len(seconds) // 2]}


def run_spec(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    s = spec["settings"]
    models = save_models(spec["models"], spec["tokenizer"])
    print(f"saved {', '.join(m['dir'] for m in models.values())}", flush=True)
    peak = measure_peak(s["peak_n"], s["dry_run"], s["threads"])
    print(f"bf16 matmul peak ({peak['n']}³): {peak['tflops_best']:.4g} TFLOP/s best", flush=True)
    write_json(spec["out"], {"models": models, "peak": peak})


if __name__ == "__main__":
    run_spec(sys.argv[1])
