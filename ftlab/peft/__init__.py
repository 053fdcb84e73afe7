"""PEFT injectors: one module per method under the contract in base.py."""
