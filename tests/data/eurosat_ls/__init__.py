"""Fake EuroSAT-L generator."""
