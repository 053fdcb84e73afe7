"""`hydra/launcher=slurm`'s launcher: submitit's, except that it waits for every job.

submitit's launcher raises at the first job that SLURM ended without a result (scancel, out of
memory, node failure, time-outs beyond max_num_timeout): the command ends in a traceback and stops
waiting for the others. Here such a job is written as a failed run in its own folder instead, so
the other jobs are still waited for, the command exits 1 naming it (ftlab.cli's SweepFailures) and
`ftlab report` lists it. And a job that stopped on SLURM's SIGTERM because SLURM requeued it
(`scontrol requeue`, pre-emption) has recorded itself as interrupted and left a result; its real
result is the next attempt's, which continues from its checkpoint (ftlab/resume.py), so that one is
waited for. The request arrives already fitted to the partition (checks.py, before the sweep
folder exists).

Hydra instantiates launchers only from the `hydra_plugins` namespace: `register()` (called by the
checks callback that slurm.yaml installs) enters this class under `TARGET`; the pickled jobs refer
to it by its real module, which every job can import.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf, open_dict

from ftlab.errors import UserError

log = logging.getLogger(__name__)
TARGET = "hydra_plugins.ftlab.SlurmLauncher"  # slurm.yaml's _target_
OWN_KEYS = ("dry_run",)  # launcher settings that are ftlab's, not submitit's
FIXES = {"CANCELLED": "it was cancelled from outside (scancel): run that point again",
         "OUT_OF_MEMORY": "raise hydra.launcher.mem_gb (`ftlab estimate <overrides>` gives the training memory)",
         "TIMEOUT": "raise hydra.launcher.timeout_min, or set checkpoint_every_n_steps=N and max_num_timeout",
         "NODE_FAIL": "run that point again (SLURM lost its node)"}
UNDERWAY = ("PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RUNNING", "CONFIGURING", "COMPLETING",
            "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT")  # SLURM states of a job not over yet
SACCT_EVERY_S = 15  # submitit's own polls thin out to one per 10 min: a cancelled job went unnoticed that long


class SlurmJobEnded(UserError):
    """SLURM ended a job before it produced a result: written as the run's failure."""


class _OnceSacctWarning(logging.Filter):
    """submitit warns on every poll (three times) when sacct fails; once is enough."""

    seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "Bypassing sacct error" not in record.getMessage():
            return True
        seen, _OnceSacctWarning.seen = _OnceSacctWarning.seen, True
        return not seen


def register() -> None:
    from hydra.core.plugins import Plugins

    Plugins.instance().class_name_to_class[TARGET] = SlurmLauncher


def make_executor(params: dict):
    """submitit's executor for these launcher parameters, as the plugin's own launch builds it."""
    import submitit

    executor = submitit.AutoExecutor(cluster="slurm", folder=params["submitit_folder"],
                                     slurm_max_num_timeout=params["max_num_timeout"])
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in shared else f"slurm_{k}": v for k, v in params.items()
                                  if k not in ("_target_", "submitit_folder", "max_num_timeout", *OWN_KEYS)})
    return executor


def accounting_answers() -> bool:
    try:
        return subprocess.run(["sacct", "--noheader", "-X", "-S", "now"], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class SlurmLauncher(BaseSubmititLauncher):
    _EXECUTOR = "slurm"

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        if not accounting_answers():
            log.warning("SLURM accounting (sacct) does not answer here: job states are unknown, so a job that SLURM "
                        "ends without a result (scancel, out of memory) leaves this command waiting")
        submitit_log = logging.getLogger("submitit")
        if not any(isinstance(f, _OnceSacctWarning) for f in submitit_log.filters):
            submitit_log.addFilter(_OnceSacctWarning())
        executor = make_executor(self.params)
        log.info("Submitit 'slurm' sweep output dir : %s", self.config.hydra.sweep.dir)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        params = []
        for idx, overrides in enumerate(job_overrides, initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        try:
            jobs = executor.map_array(self, *zip(*params))
        except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as err:
            lines = [line for line in str(err).splitlines() if line.strip()]
            from ftlab.launchers.checks import refuse

            refuse(UserError(f"sbatch refused the sweep: {lines[-1] if lines else err}",
                             "check the hydra.launcher.* settings it names (account, qos, constraint, gres); "
                             "hydra.launcher.dry_run=true shows the request"))
        return [self._wait(job, overrides, idx)
                for idx, (job, overrides) in enumerate(zip(jobs, job_overrides), initial_job_idx)]

    def _wait(self, job, overrides: Sequence[str], idx: int) -> JobReturn:
        """The job's result, the last attempt's when SLURM requeued it after the run stopped; a job
        SLURM ended without a result becomes a failed run in its own folder."""
        import submitit

        while True:
            checked = 0.0
            while not job.done():
                if time.monotonic() - checked > SACCT_EVERY_S:
                    job.watcher.update()  # one sacct call for every job of the sweep
                    checked = time.monotonic()
                time.sleep(1)
            try:
                ret = job.results()[0]
            except submitit.core.utils.UncompletedJobError as err:  # FailedJobError too: a crash outside ftlab's run
                return self._ended_without_result(job, overrides, idx, err)
            if not self._requeued(job, overrides, idx):
                return ret
            log.info("job #%d (SLURM %s) stopped and was requeued: waiting for its next attempt", idx, job.job_id)
            while self._state(job) in UNDERWAY:
                time.sleep(SACCT_EVERY_S)

    @staticmethod
    def _state(job) -> str:
        return (job.get_info(mode="force").get("State") or "UNKNOWN").split()[0]

    def _requeued(self, job, overrides: Sequence[str], idx: int) -> bool:
        """Whether the run recorded itself as interrupted (SIGTERM) and SLURM has another attempt coming."""
        from ftlab.results import INTERRUPTED, load

        _, run_dir, _ = self.job_config(overrides, idx)
        return load(run_dir).status == INTERRUPTED and self._state(job) in UNDERWAY

    def _ended_without_result(self, job, overrides: Sequence[str], idx: int, err: Exception) -> JobReturn:
        state = job.state
        key = state.split()[0] if state else ""
        first = next((line for line in str(err).splitlines() if line.strip()), "no message")
        reason = f"SLURM job {job.job_id} ended {state} without a result" + \
            ("" if key in FIXES else f" ({first[:200]})") + f"; its log: {job.paths.stderr}"
        error = SlurmJobEnded(reason, FIXES.get(key, "see its log"))
        log.error("job #%d (%s): %s", idx, " ".join(filter_overrides(overrides)), error)
        self._record_failure(overrides, idx, error)
        ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
        ret.return_value = None  # what an ftlab job returns when it failed (and recorded it)
        return ret

    def job_config(self, overrides: Sequence[str], idx: int):
        """(config, run dir, choices) of job `idx` as the job composes them (hydra.sweep.dir/subdir)."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = idx
        hydra_config = HydraConfig.instance()
        previous = hydra_config.cfg
        try:
            hydra_config.set_config(cfg)  # the subdir resolves ${hydra:runtime.choices.*}
            run_dir = Path(str(cfg.hydra.sweep.dir)) / str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
            choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra") and "@" not in k}
        finally:
            hydra_config.cfg = previous
        return cfg, run_dir.absolute(), choices

    def _record_failure(self, overrides: Sequence[str], idx: int, error: UserError) -> None:
        from ftlab.results import COMPLETED, FAILED, failed, load

        cfg, run_dir, choices = self.job_config(overrides, idx)
        if load(run_dir).status in (COMPLETED, FAILED):
            return  # the job wrote its own record before SLURM ended it
        run_dir.mkdir(parents=True, exist_ok=True)
        with open_dict(cfg):
            del cfg["hydra"]
        failed(run_dir, cfg, error, False, choices, [o for o in overrides if not o.startswith("hydra")])
