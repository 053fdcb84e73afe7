"""How the bad-input catalogue (tests/cli/test_bad_inputs.py) runs a case, and the cases every dataset
choice gets without anyone writing them: tests/config/test_extending.py runs the same for a dataset added
as one file and one YAML.

A case is (overrides, a data preparation step or None, fragments the output must contain). It must
exit != 0 with a short message naming the problem, print no traceback, and leave an earlier run's
folder byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from support.cli import TINY, run_cli

Case = tuple[list[str], Callable[[Path], list[str]] | None, list[str]]


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def make_earlier_run(root: Path) -> Path:
    """A finished run next to the failing one: its files must not change."""
    folder = root / "outputs" / "earlier"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"status": "completed", "test": {"test/accuracy": 0.9}}))
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    return folder


def run_case(case: Case, root: Path, env: dict | None = None) -> tuple[int, str, dict]:
    overrides, prepare, _ = case
    root.mkdir(parents=True)
    earlier = make_earlier_run(root)
    before = tree_digest(earlier)
    extra = prepare(root) if prepare else []
    proc = run_cli(*TINY, *extra, *overrides, f"hydra.run.dir={root / 'outputs' / 'failing'}", env=env)
    return proc.returncode, proc.stdout + proc.stderr, {"before": before, "after": tree_digest(earlier)}


def check_outcome(outcome: tuple[int, str, dict], fragments: list[str]) -> None:
    returncode, output, earlier = outcome
    assert returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} missing from:\n{output[-2000:]}"
    assert len(output.strip().splitlines()) <= 40, output  # short: no wall of logs around the message
    assert earlier["after"] == earlier["before"]


# ---- the cases of every dataset choice ---------------------------------------------------------------

def first_file_not_utf8(name: str, data_dir: Path) -> Callable[[Path], list[str]]:
    """A copy of the dataset's files (links) whose first file starts with a byte that is not UTF-8."""
    def prepare(tmp_path: Path) -> list[str]:
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        from ftlab.config import group_node

        node = OmegaConf.to_container(group_node("dataset", name))  # (not Hydra's compose: cases run in threads)
        source = instantiate({**node, "data_dir": str(data_dir)})
        root = tmp_path / "data"
        for i, path in enumerate(source.local_files()):
            copy = root / path.relative_to(source.data_dir)
            copy.parent.mkdir(parents=True, exist_ok=True)
            if i == 0:
                copy.write_bytes(b"\xe9" + path.read_bytes())
            else:
                copy.symlink_to(path)
        return [f"paths.data_dir={root}"]
    return prepare


def dataset_cases(name: str, data_dir: Path) -> dict[str, Case]:
    """An unknown setting; and for a source reading files under the data folder, that folder
    missing and a file that is not UTF-8 (the first of `local_files()`, with the data of `data_dir`)."""
    from ftlab.config import group_node

    cases: dict[str, Case] = {
        f"dataset {name}: unknown setting": ([f"dataset={name}", "+dataset.no_such_setting=1"], None,
                                             ["dataset.no_such_setting is not a setting", "valid settings"]),
    }
    if "data_dir" in group_node("dataset", name):
        cases[f"dataset {name}: data folder missing"] = (
            [f"dataset={name}", "paths.data_dir=/nonexistent/data"], None, ["/nonexistent/data/", "FTLAB_DATA_DIR"])
        cases[f"dataset {name}: a file that is not UTF-8"] = (
            [f"dataset={name}"], first_file_not_utf8(name, data_dir), ["malformed row in", ", line 1: not valid UTF-8"])
    return cases
