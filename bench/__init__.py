"""Throughput benchmark of ftlab against the HF Trainer and a plain PyTorch loop (`make bench`)."""
