"""Backbones, the Lightning module, metrics and schedules."""
