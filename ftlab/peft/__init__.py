"""Fine-tuning methods ("injectors"): one module per method under the contract in base.py, each
registered by the name of its config choice (registry.py). CONTRIBUTING.md: adding one."""
