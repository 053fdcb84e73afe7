"""`hydra.launcher.dry_run=true`: what a SLURM sweep would submit, without submitting it.

The jobs (each by the values swept), the request every job makes as fitted to the partition, the
#SBATCH lines submitit would write, and each job's training-memory estimate (`ftlab estimate`:
the model is built on the meta device, no weights read) next to the memory the job asks for. A
point whose model cannot be built (a value only the model can refuse, such as an adapter bottleneck
of zero) shows here why it would fail, before a job is spent on it."""

from __future__ import annotations

from typing import Sequence

from hydra.core.hydra_config import HydraConfig

from ftlab.errors import UserError
from ftlab.memory.formulas import GiB

KEPT_OUT = ("--output", "--error")  # paths with submitit's %j placeholders: noise here


def swept(job_overrides: Sequence[Sequence[str]]) -> list[str]:
    """Each job's overrides that differ between jobs (all of them for a single job)."""
    if len(job_overrides) < 2:
        return [" ".join(o for o in job if not o.startswith("hydra")) for job in job_overrides]
    common = set(job_overrides[0]).intersection(*map(set, job_overrides[1:]))
    return [" ".join(o for o in job if o not in common) for job in job_overrides]


def estimate(overrides: Sequence[str], device: str) -> tuple[int | None, str]:
    """(training bytes, "") for one job's config, or (None, why its model does not build)."""
    from ftlab.memory.command import build_for_estimate, compose
    from ftlab.memory.measure import estimate_for_config

    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg  # composing sets the job's config; the sweep goes on with its own
    try:
        cfg, _ = compose(list(overrides))
        model, injector = build_for_estimate(cfg)
        return int(estimate_for_config(cfg, model, injector, device=device)["total_bytes"]), ""
    except UserError as err:
        return None, err.problem
    except Exception as err:  # what the job itself would fail with
        return None, f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    finally:
        hydra_config.cfg = previous


def sbatch_options(params: dict) -> str:
    """The #SBATCH options of the job array's script, as submitit renders it."""
    from ftlab.launchers.slurm import make_executor

    text = make_executor(params)._executor._make_submission_file_text("<command>", "<uid>")
    options = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("#SBATCH ")]
    return " ".join(o for o in options if not o.startswith(KEPT_OUT))


def describe(request: dict, partition: str) -> str:
    """One job's request in words."""
    gpus = request.get("gpus_per_node")
    mem = f"{request['mem_gb']} GB per node" if request.get("mem_gb") else "the partition's default memory"
    return (f"partition {partition}, {request['nodes']} node(s) x {request['tasks_per_node']} task(s), "
            f"{request['cpus_per_task'] or 1} CPU(s) per task, {mem}, "
            f"{f'{gpus} GPU(s) per node' if gpus else 'no GPU'}, time limit {request['timeout_min']} min")


def dry_run_text(params: dict, partition, request: dict, job_overrides: Sequence[Sequence[str]]) -> str:
    """The dry run's listing: `params` the launcher's settings (fitted), `request` the fitted part."""
    device = "cuda" if request.get("gpus_per_node") else "cpu"
    asked = request["mem_gb"] * GiB if request.get("mem_gb") else None
    lines = [f"dry run, nothing submitted: {len(job_overrides)} job(s), one SLURM job array on partition "
             f"{partition.name} ({partition.describe()})",
             f"every job: {describe(request, partition.name)}",
             f"sbatch {sbatch_options(params)}",
             f"{'job':>4}  {'memory estimate':>15}  overrides"]
    for idx, (overrides, label) in enumerate(zip(job_overrides, swept(job_overrides))):
        total, problem = estimate(overrides, device)
        memory = f"{total / GiB:.3f} GiB" if total is not None else "-"
        over = "  (more than the job's --mem)" if device == "cpu" and asked and total and total > asked else ""
        lines.append(f"{idx:>4}  {memory:>15}  {label}{over}")
        if problem:
            lines.append(f"      its model does not build here: {problem}")
    where = "GPU memory per device" if device == "cuda" else "host memory, part of --mem"
    lines.append(f"memory estimate: weights, gradients, optimizer states and activations ({where}; "
                 "`ftlab estimate <overrides>` details it); Python, torch and the data come on top")
    return "\n".join(lines)
