"""Continue a run that was killed or pre-empted, in its own folder, with its own config.

    python -m ftlab resume=<run dir> [threads=N] [data.num_workers=N] [trainer.enable_progress_bar=B]

The run is rebuilt from `<run dir>/.hydra/config.yaml` and trained on from the newest of
`checkpoints/resume.ckpt` (every `checkpoint_every_n_steps` steps and each epoch end, when set) and
`checkpoints/last.ckpt` (with each new best); it ends as the uninterrupted run would have, with one
results.json. Other overrides are
refused: a resumed run is the run it continues. A SLURM job requeued after pre-emption or a time-out
runs its Hydra job again in the same folder and continues the same way (`auto_resume`).
Every refusal happens before anything in the folder is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ftlab.config import register_resolvers
from ftlab.config.saved import does_not_resolve, parse_value, saved_run
from ftlab.errors import UserError
from ftlab.results import COMPLETED, INTERRUPTED, MISSING, UNREADABLE, load

log = logging.getLogger(__name__)
CANDIDATES = ("checkpoints/resume.ckpt", "checkpoints/last.ckpt")
SAFE_OVERRIDES = ("threads", "data.num_workers", "trainer.enable_progress_bar")  # speed only, not results


@dataclass
class Resume:
    run_dir: Path
    checkpoint: Path
    global_step: int
    choices: dict = field(default_factory=dict)
    overrides: list = field(default_factory=list)
    checked: bool = False  # the checkpoint fits the rebuilt model: from here on the run dir is written

    def check(self, module) -> None:
        """Refuse a checkpoint of another model or peft method now, before the run writes anything."""
        import torch

        state = torch.load(self.checkpoint, map_location="cpu", mmap=True, weights_only=True)["state_dict"]
        try:
            module.on_load_checkpoint({"state_dict": state})
        except UserError as err:
            raise UserError(f"{self.checkpoint} was not written by this run: {err.problem}",
                            "resume a run only from checkpoints it wrote itself") from None
        self.checked = True
        log.info("resuming %s from %s (step %d)", self.run_dir, self.checkpoint.name, self.global_step)

    def to_dict(self) -> dict:
        return {"checkpoint": str(self.checkpoint.relative_to(self.run_dir)), "global_step": self.global_step}


def newest_checkpoint(run_dir: Path) -> tuple[Path, int] | None:
    """The candidate with the most optimizer steps (the later written on a tie); a file that does not
    load as a checkpoint is an error, not something to skip silently."""
    import torch

    found = []
    for name in CANDIDATES:
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            step = int(torch.load(path, map_location="cpu", mmap=True, weights_only=True)["global_step"])
        except Exception as err:  # truncated, not a zip/torch file, no global_step
            others = [n for n in CANDIDATES if n != name and (run_dir / n).is_file()]
            fix = f"delete it to resume from {others[0]}" if others else "start the run again"
            raise UserError(f"{path} is not a readable checkpoint ({type(err).__name__}: {str(err)[:120]})",
                            fix) from None
        found.append((step, path.stat().st_mtime_ns, path))
    if not found:
        return None
    step, _, path = max(found)
    return path, step


def prepare(args: list[str]) -> tuple[DictConfig, Resume]:
    """`resume=<dir>` and its few allowed overrides -> the run's config and where to resume it."""
    target = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    others = [a for a in args if not a.startswith("resume=")]
    if len(target) != 1 or not target[0]:
        raise UserError("resume= needs exactly one run directory", "python -m ftlab resume=<run dir>")
    run_dir = Path(target[0]).expanduser().resolve()
    if not run_dir.is_dir():
        raise UserError(f"no run directory at {run_dir}", "give resume= the folder of the run (it holds .hydra/)")
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not an ftlab run: it has no .hydra/config.yaml",
                        "give resume= the folder a run wrote (outputs/runs/<date>/<time>_...)")
    bad = [a for a in others if a.split("=", 1)[0].lstrip("+~") not in SAFE_OVERRIDES or "=" not in a]
    if bad:
        raise UserError(f"resume= continues a run with its own config; cannot change {', '.join(bad)}",
                        f"drop it (allowed next to resume=: {', '.join(SAFE_OVERRIDES)}), or start a new run")
    if load(run_dir).status == COMPLETED:
        raise UserError(f"{run_dir} already completed (its results.json says so): nothing to resume",
                        "start a new run to train again")
    run_dir, cfg, choices, overrides = saved_run(run_dir)
    newest = newest_checkpoint(run_dir)
    if newest is None:
        again = " ".join(overrides) or "<its overrides>"
        raise UserError(f"{run_dir} has no checkpoint to resume from ({' or '.join(CANDIDATES)})",
                        f"the run stopped before its first checkpoint: run it again (python -m ftlab {again}); "
                        "checkpoint_every_n_steps=N checkpoints within epochs")
    for arg in others:
        key, value = arg.lstrip("+~").split("=", 1)
        OmegaConf.update(cfg, key, parse_value(value), force_add=True)
    register_resolvers()
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:
        raise does_not_resolve(run_dir, err) from None
    return cfg, Resume(run_dir, newest[0], newest[1], choices, overrides)


def auto_resume(run_dir: Path, environ) -> tuple[str, Resume | None]:
    """What a job does in its run dir: "done" when SLURM requeued it after it completed, "resume"
    when SLURM requeued it (SLURM_RESTART_COUNT > 0: pre-empted, or timed out under submitit) and the
    folder holds a checkpoint and no result (no results.json, or an interrupted one), "fresh" otherwise. Requeued only: a user's new run
    pointed at an old folder starts afresh, as it always did."""
    if int(environ.get("SLURM_RESTART_COUNT") or 0) < 1:
        return "fresh", None
    status = load(run_dir).status
    if status == COMPLETED:
        return "done", None
    if status not in (MISSING, UNREADABLE, INTERRUPTED):
        return "fresh", None  # it failed: start afresh, as a new submission would
    newest = newest_checkpoint(run_dir)
    if newest is None:
        return "fresh", None
    return "resume", Resume(run_dir, newest[0], newest[1])


def continue_logs(loggers, step: int) -> list:
    """The loggers to go on with, in the same folders, without what the killed process logged from
    its checkpoint's `step` on (the resumed run logs it again): ftlab's own loggers know how
    (`continue_at`, ftlab/loggers.py); any other goes on as it is, and is named. Rank 0 only:
    loggers write there alone. Use the returned list in place of `loggers`."""
    from lightning.pytorch.utilities import rank_zero_only

    from ftlab.loggers import CSVLogger, TensorBoardLogger

    if rank_zero_only.rank != 0:
        return list(loggers)
    out = []
    for logger in loggers:
        if isinstance(logger, (CSVLogger, TensorBoardLogger)):
            out.append(logger.continue_at(step))
        else:
            log.warning("%s is not continued: what it logged from step %d on before the kill stays",
                        type(logger).__name__, step)
            out.append(logger)
    return out
