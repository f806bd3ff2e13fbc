"""Fake BigEarthNet-L generator."""
