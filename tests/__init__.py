"""Tests of torchgeo-moemae."""
