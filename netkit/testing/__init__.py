"""Helpers for testing networks built with netkit (used by netkit's own tests too)."""
