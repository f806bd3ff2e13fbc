"""Tests of torchgeo_moemae.probe."""
