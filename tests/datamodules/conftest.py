"""Reuse the dataset fixtures (fake data generators, download patching) for datamodule tests."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_dataset_fixtures", Path(__file__).resolve().parents[1] / "datasets" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

_hub_offline = _fixtures._hub_offline
ben_data = _fixtures.ben_data
eurosat_data = _fixtures.eurosat_data
ben_root = _fixtures.ben_root
eurosat_root = _fixtures.eurosat_root
