"""Tests of torchgeo_moemae.models."""
