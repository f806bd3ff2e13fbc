"""Tests of torchgeo_moemae.datasets."""
