"""Fake Landsat Collection 2 Level-2 products (see data.py)."""
