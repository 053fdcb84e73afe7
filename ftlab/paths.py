"""Where ftlab keeps derived files: the one definition of the cache directory.

`paths.cache_dir` in the config defaults to it (`${ftlab_cache_dir:}`), and code that runs
without a config (the dequantised GGUF copy, a data module built by hand) falls back to it.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """`$FTLAB_CACHE_DIR`, else `~/.cache/ftlab`: tokenized datasets, dequantised checkpoints."""
    configured = os.environ.get("FTLAB_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "ftlab"
