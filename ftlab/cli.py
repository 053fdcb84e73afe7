"""The `ftlab` command: a Hydra app for runs and sweeps.

User errors end the job with a two-line message and a failed results.json in its run directory;
a sweep goes on past a failed job and the command exits non-zero at the end, naming the failures.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from pathlib import Path

# torch's CPU allocator reads this once, at its first allocation, so it is set before anything below
# imports torch: allocations of 2 MiB and more are 2 MiB-aligned and madvised as transparent huge pages
# (ftlab/cpu.py has the measurement). THP_MEM_ALLOC_ENABLE=0 in the environment turns it off.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import hydra  # noqa: E402
from hydra.experimental.callback import Callback  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from ftlab.config import register_resolvers  # noqa: E402
from ftlab.config.plugins import register_plugins  # noqa: E402
from ftlab.sweepers import TARGET as SEARCH  # noqa: E402
from ftlab.config.preflight import preflight  # noqa: E402
from ftlab.errors import RunInterrupted, UserError  # noqa: E402
from ftlab.results import failed as record_failure, failed_runs  # noqa: E402
from ftlab.resume import auto_resume  # noqa: E402

# bitsandbytes warns at import that an optional hub-downloaded CPU kernel is missing; the built-in one works
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
from ftlab.config import CONF_DIR  # noqa: E402
log = logging.getLogger("ftlab")
FAILED: list[tuple[str, str]] = []  # (run dir, one-line reason) of the jobs of this process
register_resolvers()
register_plugins()


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def _quiet_libraries() -> None:
    """Library chatter out, Lightning's own console handler out (Hydra's handlers log it once, to
    the console and to the run's log file)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # epoch metrics come from torchmetrics, already reduced across DDP processes
    warnings.filterwarnings("ignore", message="It is recommended to use `self.log\\(")
    # Lightning's "prepend your python command with srun" wherever srun is installed, said twice per run
    # outside a SLURM allocation: ftlab reaches SLURM through hydra/launcher=submitit_slurm, not srun
    warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")
    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropAdverts())


def record_failure_if_room(run_dir, cfg, err, user: bool, choices, overrides) -> None:
    """The failed run's results.json, or a line saying why it could not be written (a full disk)."""
    try:
        record_failure(run_dir, cfg, err, user, choices, overrides)
    except OSError as write_error:
        print(f"  (results.json could not be written in {run_dir}: {write_error.strerror or write_error})",
              file=sys.stderr)


def stopped_message(stop, run_dir) -> str:
    return (f"stopped by {stop.signal_name} at step {stop.step}; the run is saved to continue exactly "
            f"(results.json: interrupted).\n  continue: ftlab resume={run_dir}")


class SweepFailures(Callback):
    """Runs in the launching process: jobs a launcher ran elsewhere (submitit: other processes or
    SLURM nodes) report their failure only in their results.json, so collect them from there."""

    swept = False

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        SweepFailures.swept = True
        known = {run_dir for run_dir, _ in FAILED}
        for record in failed_runs(config.hydra.sweep.dir):
            if str(record.run_dir) not in known:
                FAILED.append((str(record.run_dir), record.reason))


def job_context() -> tuple[Path, dict, list[str]]:
    """(run folder, config group choices, command-line overrides) of the Hydra job running now."""
    hc = HydraConfig.get()
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra") and "@" not in k}
    return Path(hc.runtime.output_dir), choices, list(hc.overrides.task)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_entry(cfg: DictConfig) -> float | None:
    """One Hydra job; returns the run's best validation value of `monitor` (never a test metric),
    the number a sweeper optimises, or None when the job failed."""
    from ftlab.run import metrics_table, run

    _quiet_libraries()
    hc = HydraConfig.get()
    output_dir, choices, overrides = job_context()
    try:
        action, resume = auto_resume(output_dir, os.environ)  # a requeued SLURM job continues its run
        if action == "done":
            log.info("%s already completed before this job was requeued: nothing to do", output_dir)
            return
        if resume is not None:
            resume.choices, resume.overrides = choices, overrides
        results = run(cfg, choices=choices, overrides=overrides, resume=resume)
    except RunInterrupted as stop:
        print(stopped_message(stop, output_dir), file=sys.stderr)
        if hc.mode.name == "MULTIRUN" and str(hc.sweeper.get("_target_")) == SEARCH:
            print(f"  continue the search (the trials still missing): the same command with "
                  f"hydra.sweep.dir={hc.sweep.dir}", file=sys.stderr)
        FAILED.append((str(output_dir), f"interrupted by {stop.signal_name} at step {stop.step}"))
        if os.environ.get("SUBMITIT_EXECUTOR"):  # a cluster job: its record says it; SLURM may requeue it
            return None
        raise SystemExit(stop.exit_code) from None  # 128 + signal, as shells expect; a sweep stops too
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        record_failure_if_room(output_dir, cfg, err, True, choices, overrides)
        FAILED.append((str(output_dir), err.problem))
        return
    except Exception as err:
        if hc.mode.name != "MULTIRUN":
            raise  # a bug: keep the traceback
        traceback.print_exc()
        record_failure_if_room(output_dir, cfg, err, False, choices, overrides)
        FAILED.append((str(output_dir), f"{type(err).__name__}: {err}"))
        return
    if not results:  # empty on DDP ranks other than 0
        return None
    print(metrics_table(results))
    return results["val"].get(results["monitor"]["metric"])


class _LogOnceChecked(logging.Handler):
    """The run's own log file (as Hydra writes it) gets a resumed run's records only once its
    checkpoint is known to fit: a refused resume leaves the run directory exactly as it was."""

    def __init__(self, resume):
        super().__init__()
        self.resume, self.held, self.file = resume, [], None

    def emit(self, record: logging.LogRecord) -> None:
        if not self.resume.checked:
            self.held.append(record)
            return
        if self.file is None:
            self.file = logging.FileHandler(self.resume.run_dir / "ftlab.log", mode="a")
            self.file.setFormatter(self.formatter)
            for held in self.held:
                self.file.emit(held)
            self.held = []
        self.file.emit(record)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


def resume_main(args: list[str]) -> int:
    """`ftlab resume=<run dir>`: continue a killed run (ftlab/resume.py); no Hydra job, so no new folder."""
    from ftlab.resume import prepare

    try:
        cfg, resume = prepare(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    from ftlab.run import metrics_table, run

    root = logging.getLogger()
    root.setLevel(logging.INFO)
    formatter = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")  # Hydra's
    for handler in (logging.StreamHandler(sys.stdout), _LogOnceChecked(resume)):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    _quiet_libraries()
    try:
        results = run(cfg, choices=resume.choices, overrides=resume.overrides, resume=resume)
    except RunInterrupted as stop:
        print(stopped_message(stop, resume.run_dir), file=sys.stderr)
        return stop.exit_code
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        if resume.checked:  # it failed while training on: record it as any run does
            record_failure_if_room(resume.run_dir, cfg, err, True, resume.choices, resume.overrides)
        return 1
    if results:
        print(metrics_table(results))
    return 0


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] == "estimate":  # `ftlab estimate ...`: memory estimate, no run
        from ftlab.memory.command import estimate_main

        sys.exit(estimate_main(argv[1:]))
    if argv and argv[0] == "report":  # `ftlab report <dir>...`: tables, tests, plots over runs
        from ftlab.report.command import report_main

        sys.exit(report_main(argv[1:]))
    if argv and argv[0] == "predict":  # `ftlab predict <run dir> --input FILE | --text ...`: a run's model on new texts
        from ftlab.predict_command import predict_main

        sys.exit(predict_main(argv[1:]))
    if any(arg in ("--help", "-h") for arg in argv):
        from ftlab.help import help_text

        print(help_text())
        sys.exit(0)
    if any(arg.startswith("resume=") for arg in argv):  # `ftlab resume=<run dir>`
        sys.exit(resume_main(argv))
    try:  # the whole config (every point of a sweep) is checked before Hydra makes any folder
        preflight(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    hydra_entry()
    from ftlab.sweepers import OUTCOME

    if FAILED and OUTCOME.get("complete"):  # a search goes on past failed trials; its best trial stands
        print(f"{len(FAILED)} of {OUTCOME['trials']} trials failed (the search went on):", file=sys.stderr)
        for run_dir, reason in FAILED:
            print(f"  {run_dir}: {reason}", file=sys.stderr)
        return
    if FAILED:
        if len(FAILED) > 1 or SweepFailures.swept:
            print(f"{len(FAILED)} job(s) failed:", file=sys.stderr)
            for run_dir, reason in FAILED:
                print(f"  {run_dir}: {reason}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
