"""ftlab: compose a fine-tuning run from Hydra config groups and record it for mean ± std studies."""

__version__ = "0.1.0"
