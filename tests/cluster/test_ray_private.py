"""cluster/ray_private.py: every private Ray call is gated by the Ray versions it was checked on."""
from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from rlfarm.cluster import ray_private  # noqa: E402


@pytest.mark.parametrize("version", ["2.39.0", "2.99.1", "3.0.0.dev0", "master"])
def test_a_ray_outside_the_tested_range_gets_the_public_api_only(monkeypatch, version):
    monkeypatch.setattr(ray, "__version__", version)
    assert not ray_private.private_ray_supported()
    assert ray_private.lean_patches() == []  # a plain start
    assert ray_private.raylet_alive() is True  # "unknown", never a false alarm
    with pytest.raises(RuntimeError, match="outside"):
        ray_private.object_store_stats("127.0.0.1:1")
    with ray_private.loopback_only():  # leaves Ray's constants alone
        pass


@pytest.mark.skipif(not ray_private.private_ray_supported(), reason="the installed Ray is newer than TESTED_RAY")
def test_every_patch_point_exists_in_the_installed_ray():
    """A patch whose private point moved would be left out with an INFO line; in the tested
    range none may be missing."""
    assert [name for name, *_ in ray_private.lean_patches()] == list(ray_private.PATCH_NAMES)
