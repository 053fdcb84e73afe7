"""What a SLURM partition offers, read from `scontrol show partition` and `sinfo`, and a sweep's
request fitted to it before anything is submitted.

SLURM itself queues a job that asks for more than a node has, possibly forever (unless the site set
EnforcePartLimits), and sbatch's own refusals reach the user as a submitit traceback. So the request
is decided here, once per sweep: `auto` values (the launcher's defaults) become what fits the
partition, explicit values that can never run are refused with the numbers and the overrides that
fit. Memory is in GiB throughout (submitit's `--mem=<mem_gb>GB` is GiB to SLURM)."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from ftlab.errors import UserError

REQUIRED = ("sbatch", "scontrol", "sinfo", "sacct")  # submit, read the partition, poll job states
AUTO = "auto"
DEFAULTS = {"cpus_per_task": 4, "mem_gb": 32, "timeout_min": 240}  # what `auto` asks where it fits
GPU_ACCELERATORS = ("gpu", "cuda")
LOCAL_CLUSTER = "sudo tools/slurm_cluster.sh start (in ftlab's source checkout)"  # a one-node cluster here
FROM_TRAINER = {"tasks_per_node": "trainer.devices", "nodes": "trainer.num_nodes"}  # slurm.yaml's interpolations


@dataclass
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: int


@dataclass
class Partition:
    name: str
    nodes: list[Node]
    max_time_min: float = math.inf
    max_nodes: float = math.inf
    others: list[str] = field(default_factory=list)  # the cluster's other partitions, for the fix

    @property
    def largest(self) -> Node:
        return max(self.nodes, key=lambda n: (n.gpus, n.cpus, n.mem_mb))

    def describe(self) -> str:
        big = self.largest
        limit = "no time limit" if math.isinf(self.max_time_min) else f"MaxTime {self.max_time_min:g} min"
        return (f"{len(self.nodes)} node(s), up to {big.cpus} CPUs, {big.mem_mb / 1024:.1f} GB and {big.gpus} GPU(s) "
                f"per node, {limit}")


def _slurm(*args: str) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip().splitlines()
        raise UserError(f"`{' '.join(args)}` failed: {message[-1] if message else f'exit {proc.returncode}'}",
                        f"check that the SLURM controller is up (scontrol ping); a cluster on this machine: {LOCAL_CLUSTER}")
    return proc.stdout


def minutes(value: str) -> float:
    """A SLURM duration ([days-]hours:minutes:seconds, minutes:seconds, minutes, UNLIMITED) in minutes."""
    if value.upper() in ("UNLIMITED", "INFINITE", "NONE"):
        return math.inf
    days, _, rest = value.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:  # days-hours[:minutes[:seconds]]
        hours, mins, secs = parts + [0] * (3 - len(parts))
    else:  # minutes, minutes:seconds, hours:minutes:seconds
        hours, mins, secs = {1: (0, parts[0], 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]
    return int(days or 0) * 1440 + hours * 60 + mins + secs / 60


def gpu_count(gres: str) -> int:
    """GPUs in a node's Gres (`gpu:4`, `gpu:a100:4(S:0-1)`, `gpu:a100:2,gpu:v100:2`, `(null)`)."""
    total = 0
    for item in re.sub(r"\([^)]*\)", "", gres).split(","):
        fields = item.split(":")
        if fields[0] == "gpu" and len(fields) > 1 and fields[-1].isdigit():
            total += int(fields[-1])
    return total


def missing_commands() -> list[str]:
    return [c for c in REQUIRED if shutil.which(c) is None]


def query(name: str | None) -> Partition:
    """The partition `name` (None: the cluster's default one), as the controller describes it now."""
    missing = missing_commands()
    if missing:
        raise UserError(f"hydra/launcher=slurm needs SLURM's commands, and {', '.join(missing)} "
                        f"{'is' if len(missing) == 1 else 'are'} not on PATH",
                        "run the sweep where SLURM is installed (a login node; `module load slurm` on some "
                        f"clusters), or try it on this machine: {LOCAL_CLUSTER}; hydra/launcher=local needs no SLURM")
    partitions = {}
    for line in _slurm("scontrol", "show", "partition", "--oneliner").splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "PartitionName" in fields:
            partitions[fields["PartitionName"]] = fields
    names = sorted(partitions)
    if name is None:
        default = [n for n, f in partitions.items() if f.get("Default") == "YES"]
        if not default:
            raise UserError("the cluster has no default partition", f"hydra.launcher.partition=<one of {', '.join(names)}>")
        name = default[0]
    if name not in partitions:
        raise UserError(f"SLURM partition {name!r} does not exist on this cluster",
                        f"hydra.launcher.partition=<one of {', '.join(names) or '(none)'}>")
    fields = partitions[name]
    nodes = {}
    for line in _slurm("sinfo", "--noheader", "--Node", "--partition", name, "--format", "%N|%c|%m|%G").splitlines():
        node, cpus, mem, gres = line.strip().split("|")
        nodes[node] = Node(node, int(cpus.rstrip("+")), int(mem.rstrip("+")), gpu_count(gres))
    cap_cpus, cap_mem = fields.get("MaxCPUsPerNode", "UNLIMITED"), fields.get("MaxMemPerNode", "UNLIMITED")
    for node in nodes.values():  # the partition's own per-node caps, where it has them
        node.cpus = min(node.cpus, int(cap_cpus)) if cap_cpus.isdigit() else node.cpus
        node.mem_mb = min(node.mem_mb, int(cap_mem)) if cap_mem.isdigit() else node.mem_mb
    if not nodes:
        raise UserError(f"SLURM partition {name!r} has no nodes", f"hydra.launcher.partition=<one of {', '.join(names)}>")
    max_nodes = fields.get("MaxNodes", "UNLIMITED")
    return Partition(name, list(nodes.values()), minutes(fields.get("MaxTime", "UNLIMITED")),
                     int(max_nodes) if max_nodes.isdigit() else math.inf, [n for n in names if n != name])


def wants_gpus(accelerator: str, devices, partition: Partition) -> int | None:
    """`gpus_per_node: auto`: the trainer's devices when it trains on GPUs (accelerator gpu/cuda, or
    auto on a partition that has GPUs), else no GPU at all (a CPU partition refuses any gres)."""
    accelerator = str(accelerator).lower()
    if accelerator in GPU_ACCELERATORS or (accelerator == "auto" and partition.largest.gpus > 0):
        if not isinstance(devices, int) or devices < 1:
            raise UserError(f"trainer.devices={devices!r}: a SLURM job asks for a number of GPUs per node",
                            "trainer.devices=<GPUs per node>, e.g. trainer.devices=1")
        return devices
    return None


def _checked(key: str, value):
    """auto, null (SLURM's default) or a whole number: the launcher's config is not typed, so say so here."""
    if key in FROM_TRAINER:  # ${trainer.devices}, ${trainer.num_nodes}: a job needs the number
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{FROM_TRAINER[key]}={value!r}: a SLURM job needs a number here "
                            f"({'tasks per node, one per device' if key == 'tasks_per_node' else 'nodes'})",
                            f"{FROM_TRAINER[key]}=<a number>, e.g. {FROM_TRAINER[key]}=1; nothing was submitted")
        return value
    if value == AUTO or (value is None and key != "timeout_min"):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "gpus_per_node" else 1):
        allowed = "auto or " if key == "timeout_min" else "auto, null or "
        raise UserError(f"hydra.launcher.{key}={value!r}: expected {allowed}a positive whole number",
                        f"hydra.launcher.{key}=<{allowed}a number>; nothing was submitted")
    return value


def fit(request: dict, partition: Partition, accelerator: str = "cpu", devices=1) -> dict:
    """`request` (the launcher's cpus_per_task, mem_gb, gpus_per_node, timeout_min, tasks_per_node,
    nodes) with `auto` resolved; raises a `UserError` naming every part that no node can give."""
    out = {key: _checked(key, value) for key, value in request.items()}
    gpus = wants_gpus(accelerator, devices, partition) if out.get("gpus_per_node") == AUTO else out.get("gpus_per_node")
    out["gpus_per_node"] = gpus or None
    able = [n for n in partition.nodes if n.gpus >= (gpus or 0)] or partition.nodes
    big = max(able, key=lambda n: (n.cpus, n.mem_mb))
    tasks, nodes = out.get("tasks_per_node", 1), out.get("nodes", 1)
    if out.get("cpus_per_task") == AUTO:
        out["cpus_per_task"] = max(1, min(DEFAULTS["cpus_per_task"], big.cpus // tasks))
    cpus = int(out.get("cpus_per_task") or 1) * tasks
    if out.get("mem_gb") == AUTO:  # the node's memory in proportion to the CPUs (or GPUs) taken, at most 32 GB
        share = max(min(cpus, big.cpus) / big.cpus, min(gpus or 0, big.gpus) / big.gpus if big.gpus else 0)
        out["mem_gb"] = max(1, min(DEFAULTS["mem_gb"], int(big.mem_mb * share) // 1024))
    if out.get("timeout_min") == AUTO:
        out["timeout_min"] = int(min(DEFAULTS["timeout_min"], partition.max_time_min))
    mem_mb = int(out["mem_gb"]) * 1024 if out.get("mem_gb") else 0
    problems, fixes = [], []
    if gpus and big.gpus < gpus:
        problems.append(f"{gpus} GPU(s) per node asked, a node has {big.gpus}")
        fixes.append("trainer.accelerator=cpu" if big.gpus == 0 and request.get("gpus_per_node") == AUTO
                     else f"hydra.launcher.gpus_per_node={big.gpus or 'null'}")
    if big.cpus < cpus:
        problems.append(f"{cpus} CPUs per node asked ({out['cpus_per_task']} per task x {tasks} task(s)), "
                        f"a node has {big.cpus}")
        fixes.append(f"hydra.launcher.cpus_per_task={big.cpus // tasks}" if big.cpus >= tasks else
                     f"at most {big.cpus} tasks per node (trainer.devices)")
    if big.mem_mb < mem_mb:
        problems.append(f"{out['mem_gb']} GB per node asked (mem_gb), a node has {big.mem_mb / 1024:.1f} GB")
        fixes.append(f"hydra.launcher.mem_gb={big.mem_mb // 1024}")
    if float(out["timeout_min"]) > partition.max_time_min:
        problems.append(f"{out['timeout_min']} min asked (timeout_min), the partition allows {partition.max_time_min:g}")
        fixes.append(f"hydra.launcher.timeout_min={int(partition.max_time_min)}")
    room = min(partition.max_nodes, len([n for n in able if n.cpus >= cpus and n.mem_mb >= mem_mb]))
    if not problems and room < nodes:
        problems.append(f"{nodes} node(s) asked, {room} can give {cpus} CPUs, {out['mem_gb']} GB and {gpus or 0} GPU(s)")
        fixes.append(f"trainer.num_nodes={room}" if room else "fewer CPUs, memory or GPUs per node")
    if problems:
        others = f" (or another partition: hydra.launcher.partition=<one of {', '.join(partition.others)}>)" \
            if partition.others else ""
        raise UserError(f"the SLURM request can never run on partition {partition.name} "
                        f"({partition.describe()}): {'; '.join(problems)}",
                        f"{' '.join(fixes)}{others}; nothing was submitted")
    return out
