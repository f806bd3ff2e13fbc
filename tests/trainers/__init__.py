"""Tests of torchgeo_moemae.trainers."""
