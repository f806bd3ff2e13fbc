"""Fake-data generators (importable, and runnable as scripts)."""
