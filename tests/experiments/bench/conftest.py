"""The benchmarks measure real farms: they share the Ray farm tests' fixtures (`ray_local`,
one Ray session per test module, and `cartpole`, small farm configs) from tests/cluster."""
from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "rlfarm_cluster_test_fixtures", Path(__file__).resolve().parents[2] / "cluster" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

ray_local = _fixtures.ray_local
cartpole = _fixtures.cartpole
