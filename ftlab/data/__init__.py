"""Datasets: original-file sources, tokenization cache, batching."""
