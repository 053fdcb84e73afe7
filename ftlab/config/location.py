"""Where the configs are: package data inside `ftlab/`, so an installed wheel composes as a checkout does."""

from __future__ import annotations

from pathlib import Path

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
