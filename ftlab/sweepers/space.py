"""A search's space as Optuna sees it, and the points that check it before any trial runs.

The space is the preset's `hydra.sweeper.params` plus the command line's sweep overrides
(`optimizer.lr=tag(log, interval(1e-5, 1e-2))`, `peft.r=choice(4, 8, 16)`), read with the Optuna
plugin's own parser, so what is checked is what the sampler will draw from. Every value a trial can
get cannot be composed in advance; the ends of each range and every choice can: `check_points` gives
as many points as the longest list of such values, each parameter at its i-th (or last) value, so a
key that does not exist or a bound a method refuses (`peft.r=interval(0, 16)`) fails at composition.
"""

from __future__ import annotations

from ftlab.errors import UserError

SEARCH_SETTINGS_FIX = "see conf/hydra/sweeper/optuna.yaml (or an hparams_search preset) for the settings"


def search_space(arguments: list[str]):
    """(distributions by key, fixed values by key) of these overrides, as the Optuna sweeper reads them."""
    from hydra.errors import HydraException
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    try:
        return create_params_from_overrides(arguments)
    except (HydraException, NotImplementedError, AssertionError, ValueError) as exc:
        raise UserError(f"search space: {exc}", "ranges are interval(a, b), tag(log, interval(a, b)), "
                                                "range(a, b, step) or choice(x, y, ...)") from None


def bounds(distribution) -> list:
    """The values of a distribution that a check can compose: its choices, or its two ends."""
    if hasattr(distribution, "choices"):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def as_override(key: str, value) -> str:
    return f"{key}={value!r}" if isinstance(value, str) and value != value.strip() else f"{key}={value}"


def check_points(arguments: list[str]) -> list[tuple[str, list[str]]]:
    """[(what the point sets, its overrides)]: every choice and both ends of every range, at least once."""
    space, fixed = search_space(arguments)
    base = [as_override(k, v) for k, v in fixed.items()]
    if not space:
        return [("", base)]
    values = {key: bounds(dist) for key, dist in space.items()}
    points = []
    for i in range(max(len(v) for v in values.values())):
        chosen = [as_override(key, vals[min(i, len(vals) - 1)]) for key, vals in values.items()]
        points.append((" ".join(chosen), base + chosen))
    return points


def check_settings(sweeper) -> None:
    """The search's own settings (hydra.sweeper.*) that Optuna would only refuse mid-search."""
    n_trials, n_jobs = sweeper.get("n_trials"), sweeper.get("n_jobs")
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise UserError(f"hydra.sweeper.n_trials={n_trials}: a search needs at least one trial",
                        "hydra.sweeper.n_trials=20 (the total, counting the trials a stopped search already ran)")
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1:
        raise UserError(f"hydra.sweeper.n_jobs={n_jobs}: trials launched at once must be at least 1",
                        "hydra.sweeper.n_jobs=1 on one machine; more with a launcher that runs jobs in parallel "
                        "(hydra/launcher=slurm)")
    direction = sweeper.get("direction")
    if direction not in ("auto", "maximize", "minimize"):
        raise UserError(f"hydra.sweeper.direction={direction}: not a direction",
                        "auto (from monitor_mode), maximize or minimize")
