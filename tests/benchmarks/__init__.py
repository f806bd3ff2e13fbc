"""Tests of the benchmark scripts (quick modes; no timing asserted)."""
