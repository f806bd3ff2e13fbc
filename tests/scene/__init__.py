"""Tests of torchgeo_moemae.scene."""
