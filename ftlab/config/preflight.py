"""The checks a command line gets before Hydra starts: a run, `--cfg job`, or every point of a
`-m` sweep, each composed and checked as its job would be. Nothing is created here: Hydra makes
the run or sweep folder only after these pass, so a mistake leaves no folder behind."""

from __future__ import annotations

import argparse

from ftlab.config.checks import checked
from ftlab.config.composition import compose, hydra_mode, sweep_points
from ftlab.errors import UserError

# Hydra flags after which ftlab's checks do not apply (another config, Hydra's own output)
NOT_CHECKED = ("hydra_help", "info", "shell_completion", "config_path", "config_name", "config_dir",
               "experimental_rerun")


def hydra_arguments(argv: list[str]) -> argparse.Namespace:
    """The command line as Hydra's own parser reads it (overrides, -m, --cfg, ...)."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.error = lambda message: (_ for _ in ()).throw(UserError(message, "ftlab --help shows the usage"))
    return parser.parse_args(argv)


def check_point(overrides: list[str]) -> None:
    from hydra.core.hydra_config import HydraConfig

    cfg = compose(overrides)
    choices = dict(HydraConfig.get().runtime.choices)
    checked(cfg, choices)


def refuse_two_commands(args: argparse.Namespace) -> None:
    """Hydra's own refusal of two commands at once, as a one-line error instead of its traceback."""
    given = [flag for flag, on in (("--run", args.run), ("-m/--multirun", args.multirun), ("--cfg", args.cfg),
                                   ("--info", args.info is not None), ("--shell-completion", args.shell_completion))
             if on]
    if len(given) > 1:
        raise UserError(f"{' and '.join(given)} cannot be combined",
                        "--cfg job (or hydra) shows the config of one run: drop -m; "
                        "`ftlab -m ... hydra.launcher.dry_run=true` lists a SLURM sweep's jobs")


def is_multirun(args: argparse.Namespace) -> bool:
    """-m, or a preset that makes the command a sweep itself (hparams_search: hydra.mode=MULTIRUN)."""
    if args.multirun:
        return True
    return not args.cfg and hydra_mode(args.overrides) == "MULTIRUN"


def preflight(argv: list[str]) -> None:
    """Raise the first `UserError` the command line's run (or any point of its sweep) would hit."""
    args = hydra_arguments(argv)
    refuse_two_commands(args)
    if any(getattr(args, flag, None) for flag in NOT_CHECKED):
        return
    if not is_multirun(args):
        check_point(args.overrides)
        return
    points, sweeper = sweep_points(args.overrides)
    search = sweeper.endswith("OptunaSweeper")
    varying = {o.split("=", 1)[0] for o in points[0] if any(o not in p for p in points)} if len(points) > 1 else set()
    for number, point in enumerate(points):
        try:
            check_point(point)
        except UserError as err:
            swept = " ".join(o for o in point if o.split("=", 1)[0] in varying) or " ".join(point)
            where = (f"search space at {swept} (an end of a range, or a choice)" if search else
                     f"sweep point {number} of {len(points)} ({swept})")
            started = "no trial of the search was started" if search else "no job of the sweep was started"
            raise UserError(f"{where}: {err.problem}", f"{err.fix}; {started}" if err.fix else started) from None
