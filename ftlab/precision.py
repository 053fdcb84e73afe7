"""`trainer.precision=auto`: bf16-mixed where the hardware multiplies bf16 natively, 32-true elsewhere.

Native bf16 matrix products: on CUDA compute capability 8.0 and later (Ampere, Hopper, ...); on
CPU the AMX-BF16 or AVX512-BF16 instructions (Intel Sapphire Rapids and later, AMD Zen 4 and later),
which oneDNN uses for torch's bf16 matmuls. Measured on this project's Xeon (AMX-BF16): bf16 matrix
products 3-4x fp32, MiniLM full fine-tuning 104 train samples/s in bf16-mixed against 71 in fp32;
without those instructions bf16 is emulated and slower than fp32, hence fp32 there (measured on an
AMD EPYC with AVX2 only, one thread: a MiniLM-shaped matrix product at 50 GFLOP/s in fp32, 6.7 in
bf16; a bf16-mixed LoRA run there had not finished its first epoch when fp32 had finished all five).
A bf16 precision chosen on such a machine is kept, with a warning (`emulated_bf16_warning`).

`checked()` (ftlab/config/checks.py) replaces `auto` by the precision it picks, before anything is
built, so the run, its results.json config and the report's grouping all see the resolved value;
results.json `precision` says what was asked for and why the choice was made.
"""

from __future__ import annotations

import functools
from pathlib import Path

AUTO = "auto"
BF16 = "bf16-mixed"
FP32 = "32-true"
CPU_FEATURES = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"))


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def uses_cuda(accelerator: str) -> bool:
    import torch

    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def native_bf16(accelerator: str = "auto") -> tuple[bool, str]:
    """(whether the device `accelerator` picks multiplies bf16 natively, what it is)."""
    if uses_cuda(accelerator):
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA device"
        major, minor = torch.cuda.get_device_capability()
        return major >= 8, f"{torch.cuda.get_device_name()} (compute capability {major}.{minor})"
    return cpu_native_bf16()


def cpu_native_bf16() -> tuple[bool, str]:
    """native_bf16 for the CPU, from its flags alone (no torch import: bench/run.py's parent uses it)."""
    found = [name for flag, name in CPU_FEATURES if flag in cpu_flags()]
    if found:
        return True, f"CPU with {' and '.join(found)}"
    return False, "CPU without AMX-BF16 or AVX512-BF16 (bf16 would be emulated)"


def resolve(precision, accelerator: str = "auto") -> tuple[str, str]:
    """(the precision a run uses, why): `auto` -> bf16-mixed or 32-true; any other value as given."""
    precision = str(precision)
    if precision != AUTO:
        return precision, "chosen in the config"
    native, device = native_bf16(str(accelerator))
    return (BF16 if native else FP32), device


def emulated_bf16_warning(setting: str, accelerator: str, fix: str) -> str | None:
    """The warning for a bf16 `setting` the user chose (kept: they chose it) where the device only
    emulates bf16, None elsewhere: a run about 7x slower than fp32 should not be a surprise."""
    native, device = native_bf16(str(accelerator))
    if native:
        return None
    return f"{setting} on a {device}: its matrix products run about 7x slower than in fp32 here; {fix}"


def record(cfg) -> dict:
    """results.json `precision`: the value used, and what `auto` picks on this machine and why."""
    auto, why = resolve(AUTO, str(cfg.trainer.get("accelerator", "auto")))
    return {"used": str(cfg.trainer.precision), "auto_picks": auto, "why": why}


def autocast(precision: str, device_type: str = "cpu"):
    """The autocast context inference under `precision` runs in (ftlab predict, ftlab.load)."""
    import contextlib

    import torch

    if str(precision) == BF16:
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
