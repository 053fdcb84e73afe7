"""ftlab: compose a fine-tuning run from Hydra config groups and record it for mean ± std studies.

From Python (README "Python API"): `ftlab.train(*overrides)` runs one job as the `ftlab` command
does and returns its results; `ftlab.load(run_dir)` is the run's trained classifier. Both import
torch and transformers only when called, so `import ftlab` stays light.
"""

from ftlab.errors import UserError

__version__ = "0.1.0"
__all__ = ["UserError", "load", "train"]


def train(*overrides: str) -> dict:
    """One run, as `ftlab <overrides>`: its results.json content (ftlab/training.py)."""
    from ftlab.training import train as _train

    return _train(*overrides)


def load(run_dir, threads: int | None = None):
    """A completed run's trained classifier: .predict(texts), .labels, .model, .tokenizer (ftlab/classifier.py)."""
    from ftlab.classifier import load as _load

    return _load(run_dir, threads=threads)
