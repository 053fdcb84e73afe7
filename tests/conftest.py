"""Compose the real configs and shrink them: tiny random models, a few batches, a tmp run dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FTLAB_DATA_DIR", REPO.parent / "shared" / "data")).resolve()

os.environ["FTLAB_DATA_DIR"] = str(DATA_DIR)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

# overrides that make any run a seconds-long smoke run
TINY = [
    "threads=1",  # a shared 2-core box: a second torch thread waits on the busy core
    "model=tiny_bert",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "data.batch_size=8",
    "data.eval_batch_size=16",
]


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """One tokenization cache for the whole session, never the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("ftlab-cache")
    os.environ["FTLAB_CACHE_DIR"] = str(cache)
    yield cache


@pytest.fixture
def compose(tmp_path):
    """compose(*overrides) -> the real config (ftlab.config.composition, unchecked) with TINY applied and
    the run dir under tmp_path."""
    from ftlab.config import compose as compose_config

    def _compose(*overrides: str, tiny: bool = True):
        return compose_config([*(TINY if tiny else []), f"paths.output_dir={tmp_path / 'run'}", *overrides])

    return _compose


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None):
    """Run `python -m ftlab` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ftlab", *args],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
