"""Placeholder until its module lands (see the issue note)."""
