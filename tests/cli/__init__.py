"""Tests of torchgeo_moemae.cli."""
