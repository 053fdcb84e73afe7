"""`ftlab.train(...)`: one run from Python, exactly as `ftlab <overrides>` runs it.

    results = ftlab.train("peft=lora", "dataset=acl_sup", "seed=1")
    results["test"]["test/macro_f1"], results["run_dir"]
    ftlab.load(results["run_dir"]).predict("We extend their method ...")

The overrides are the command line's (`key=value`, `group=option`), checked as the command checks
them before anything is created; then Hydra runs the job as it runs the command's (the run folder,
its .hydra/ and ftlab.log) and the run writes results.json, whose content is returned. A mistake
raises `ftlab.UserError` (str() names the problem and the fix); when the run had started, its folder
holds a failed results.json, as after the command. One run per call: sweeps and searches are the
command's (`ftlab -m ...`), or a loop of calls.
"""

from __future__ import annotations

from ftlab.errors import RunInterrupted, UserError


def _job(cfg):
    """The Hydra task: the run, its failure recorded in its folder before the error goes up."""
    from ftlab.cli import job_context, record_failure_if_room
    from ftlab.run import run

    output_dir, choices, overrides = job_context()
    try:
        return run(cfg, choices=choices, overrides=overrides)
    except RunInterrupted:  # Ctrl-C: the run has recorded itself (ftlab resume=<run dir> continues it)
        raise
    except UserError as err:
        record_failure_if_room(output_dir, cfg, err, True, choices, overrides)
        raise
    except Exception as err:
        record_failure_if_room(output_dir, cfg, err, False, choices, overrides)
        raise


def _refuse_what_is_not_one_run(overrides: list[str]) -> None:
    from ftlab.config.composition import hydra_mode
    from ftlab.config.preflight import hydra_arguments

    args = hydra_arguments(overrides)
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        raise UserError(f"ftlab.train takes overrides only, not {' '.join(flags)}",
                        "pass key=value strings; --cfg, -m and the like are the command's (ftlab --help)")
    if hydra_mode(args.overrides) == "MULTIRUN":  # (a=1,2 is refused by the checks, as on the command line)
        culprit = [o for o in overrides if o.lstrip("+").startswith(("hparams_search=", "hydra.mode="))] or overrides
        raise UserError(f"ftlab.train runs one job; {' '.join(culprit)} is a sweep",
                        "run sweeps and searches with the command (ftlab -m ...), or call ftlab.train once per point")


def train(*overrides: str) -> dict:
    """Run one job with these overrides; returns its results.json content (`run_dir` says where)."""
    if len(overrides) == 1 and isinstance(overrides[0], (list, tuple)):
        overrides = tuple(overrides[0])
    overrides = [str(o) for o in overrides]
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra

    from ftlab.config import CONF_DIR
    from ftlab.config.preflight import preflight

    if GlobalHydra.instance().is_initialized():
        raise UserError("ftlab.train was called inside a Hydra app (Hydra is already initialized)",
                        "call it from plain Python, or run `ftlab <overrides>` in a subprocess")
    _refuse_what_is_not_one_run(overrides)
    preflight(overrides)  # every check the command makes, before Hydra creates the run folder
    import ftlab.cli  # noqa: F401  (its resolvers, plugins and environment, as for the command)

    hydra = Hydra.create_main_hydra2(task_name="ftlab", config_search_path=create_config_search_path(f"file://{CONF_DIR}"))
    try:
        return hydra.run(config_name="config", task_function=_job, overrides=overrides).return_value
    finally:
        GlobalHydra.instance().clear()
