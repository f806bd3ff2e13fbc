"""Tests of torchgeo_moemae.analysis."""
