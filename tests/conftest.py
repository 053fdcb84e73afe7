"""Fixtures of every test: the session's own cache, the real configs composed and shrunk (TINY), and
the forked-CLI server's end. What tests import (REPO, DATA_DIR, TINY, run_cli) is in support/cli.py."""

from __future__ import annotations

import os

import pytest

from support.cli import DATA_DIR, TINY, stop_forked_cli

os.environ["FTLAB_DATA_DIR"] = str(DATA_DIR)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"


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


@pytest.fixture(scope="session", autouse=True)
def _forked_cli_ends():
    yield
    stop_forked_cli()
