"""`make gpu-check` / `python -m bench.gpu_check`: one prepared script for the borrowed GPU machine.

The project sometimes gets one H200 for a few minutes (no network, its own torch / transformers /
lightning), so everything that needs CUDA is checked in one short, prepared run instead of by hand:
ftlab against the HF Trainer at base size (throughput, MFU, peak CUDA memory next to `ftlab
estimate`), then every CUDA-only path of ftlab once as a short real `python -m ftlab` run (QLoRA,
paged AdamW, FSDP on one GPU, fp16-mixed, gradient checkpointing, compile). `--dry-run` runs the
same plan on CPU with tiny models (tests/benchmarks/test_gpu_check.py, in `make test`), so the script cannot rot
between the rare loans. bench/README.md "GPU check" says how to run it.

Modules: plan (settings, random models, the job list), jobs (runs them: a process each on the GPU,
one shared process in the dry run), hf (the benchmark's HF Trainer contender on CUDA), probe (the
benchmark's step probe, synchronised), summary (figures, JSON, Markdown).
"""

H200_BF16_DENSE_TFLOPS = 989.0  # NVIDIA's specification (dense; 1979 "with sparsity")
