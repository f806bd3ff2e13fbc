"""Tests of torchgeo_moemae.datamodules."""
