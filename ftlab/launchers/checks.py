"""What a `hydra/launcher=slurm` sweep gets before anything is submitted, and before Hydra creates
its folder (slurm.yaml installs `SlurmChecks` as a Hydra callback; `on_multirun_start` runs just
before the sweeper writes the sweep folder and launches).

- One request per sweep: points that differ in what a job asks SLURM for (trainer.devices=1,2)
  are refused, since the launcher's request is resolved once, from the sweep's own trainer.
- The request is fitted to the partition (partition.py): `auto` becomes what fits, and anything
  that can never run is refused with the numbers and the fix. The fitted values are written into
  the sweep's config, so the launcher submits them and multirun.yaml records them.
- `hydra.launcher.dry_run=true`: the jobs, their request and memory estimates (plan.py); exit 0.

A refusal prints `error: ...` and exits 1; nothing is submitted and no folder is left. Hydra turns
an exception in a callback into a warning and goes on, so nothing may escape from here: a bug
prints its traceback and exits 1 too, rather than submitting an unchecked sweep.
"""

from __future__ import annotations

import logging
import sys
import traceback

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ftlab.errors import UserError
from ftlab.launchers import partition as slurm_partition
from ftlab.launchers.plan import describe, dry_run_text
from ftlab.launchers.slurm import register

log = logging.getLogger(__name__)
FITTED = ("cpus_per_task", "mem_gb", "gpus_per_node", "timeout_min", "tasks_per_node", "nodes")
PER_SWEEP = ("trainer", "trainer.devices", "trainer.num_nodes", "trainer.accelerator")  # they set the request


def refuse(err: UserError):
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(1)


def one_request(points: list[list[str]]) -> None:
    """Refuse a sweep whose points would need different SLURM requests."""
    def value(point, key):
        return next((o.split("=", 1)[1] for o in point if o.split("=", 1)[0].lstrip("+~") == key), "(not set)")

    varying = {key: sorted({value(p, key) for p in points}) for key in PER_SWEEP}
    varying = {key: values for key, values in varying.items() if len(values) > 1}
    if varying:
        swept = "; ".join(f"{k}: {', '.join(v)}" for k, v in varying.items())
        raise UserError(f"the points of this sweep would ask SLURM for different resources ({swept}); one sweep is "
                        "one job array with one request",
                        "one sweep per value (-m ... trainer.devices=1, then -m ... trainer.devices=2); "
                        "nothing was submitted")


def fitted_request(config: DictConfig) -> tuple[slurm_partition.Partition, dict]:
    """The partition and the sweep's request fitted to it (raises UserError when it can never run)."""
    launcher, trainer = config.hydra.launcher, config.trainer
    part = slurm_partition.query(launcher.get("partition"))
    request = slurm_partition.fit({k: launcher.get(k) for k in FITTED}, part,
                                  str(trainer.get("accelerator", "auto")), trainer.get("devices", 1))
    return part, request


class SlurmChecks(Callback):
    def __init__(self) -> None:
        register()  # the launcher, under the name slurm.yaml gives it

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            self.prepare(config)
        except UserError as err:
            refuse(err)
        except SystemExit:
            raise
        except Exception:  # a bug: keep its traceback, and submit nothing
            traceback.print_exc()
            raise SystemExit(1) from None

    def prepare(self, config: DictConfig) -> None:
        from ftlab.config.composition import sweep_points

        points, _ = sweep_points([*config.hydra.overrides.hydra, *config.hydra.overrides.task])
        one_request(points)
        part, request = fitted_request(config)
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.launcher.update(request)
        if config.hydra.launcher.get("dry_run"):
            params = OmegaConf.to_container(config.hydra.launcher, resolve=True)
            print(dry_run_text(params, part, request, points))
            raise SystemExit(0)
        log.info("SLURM request per job: %s", describe(request, part.name))
