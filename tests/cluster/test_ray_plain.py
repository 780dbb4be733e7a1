"""Ray's own start: asked for with RLFARM_PLAIN_RAY=1, or taken when a patched start fails.

One embedded Ray at a time: the module fixture starts each case in turn and shuts it down.
"""
from __future__ import annotations

import logging
import os

import pytest

from rlfarm.cluster.ray_private import private_ray_supported

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads processes from /proc (Linux)")


def _children_running(fragment: str) -> list[int]:
    """Live (not zombie) children of this process whose command line contains `fragment`."""
    from rlfarm.cluster.ray_session import _child_pids

    found = []
    for pid in _child_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                command = stream.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat", "rb") as stream:
                state = stream.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if fragment in command and state != b"Z":
            found.append(pid)
    return found


def _rays_functions() -> tuple:
    from ray._private import services
    from ray._private import utils as ray_utils
    from ray._private.node import Node

    return (Node.start_api_server, ray_utils.get_dashboard_dependency_error, services.get_node,
            services.start_log_monitor, services.start_monitor)


def _broken_log_monitor_patch(monkeypatch):
    """The real patches, with the log monitor's replaced by one that fails half-way through
    Ray's start (after the GCS is up), as a patch would on a Ray that changed underneath it."""
    from rlfarm.cluster import ray_private

    real = ray_private.lean_patches

    def fail(original):
        def broken(*args, **kwargs):
            raise RuntimeError("a patched private function broke")
        return broken

    def patches():
        return [(name, owner, attribute, fail if name == "services.start_log_monitor" else make)
                for name, owner, attribute, make in real()]

    monkeypatch.setattr(ray_private, "lean_patches", patches)


NO_PATCHES = pytest.mark.skipif(not private_ray_supported(), reason="no patches outside TESTED_RAY")


@pytest.fixture(scope="module", params=["RLFARM_PLAIN_RAY=1", pytest.param("a patch fails", marks=NO_PATCHES)])
def plain_start(request):
    import ray

    from rlfarm.cluster import ray_session

    if ray.is_initialized():
        ray.shutdown()
    before = _rays_functions()
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    log = logging.getLogger(ray_session.__name__)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    with pytest.MonkeyPatch.context() as monkeypatch:
        if request.param == "RLFARM_PLAIN_RAY=1":
            monkeypatch.setenv(ray_session.PLAIN_RAY_ENV_VAR, "1")
        else:
            monkeypatch.delenv(ray_session.PLAIN_RAY_ENV_VAR, raising=False)
            _broken_log_monitor_patch(monkeypatch)
        session = ray_session.start_ray(num_cpus=2)
    log.removeHandler(handler)
    log.setLevel(level)
    yield request.param, session, before, [r.getMessage() for r in records]
    session.close()


@pytest.mark.slow
def test_plain_start_runs_tasks(plain_start):
    import ray

    _, session, _, _ = plain_start
    assert session.embedded and session.owned and not session.lean and session.patch_calls == {}

    @ray.remote
    def double(value: int) -> int:
        return 2 * value

    assert ray.get([double.remote(value) for value in range(3)]) == [0, 2, 4]


@pytest.mark.slow  # a Ray of its own per parameter
def test_plain_start_is_rays_own(plain_start):
    """Ray's usage-stats API server runs (the lean start leaves it out), and the patched
    functions are Ray's own again."""
    _, _, before, _ = plain_start
    assert _children_running("dashboard/dashboard.py")
    assert _rays_functions() == before


@pytest.mark.slow
def test_plain_start_says_why_in_one_info_line(plain_start):
    case, _, _, messages = plain_start
    if case == "a patch fails":
        said = [m for m in messages if "starting it plainly" in m]
        assert len(said) == 1 and "a patched private function broke" in said[0]
    else:
        assert any("RLFARM_PLAIN_RAY is set" in m for m in messages)


@pytest.mark.slow
def test_a_failed_patched_start_leaves_no_second_ray(plain_start):
    """The GCS that the failed start had launched is gone: one Ray runs, the plain one."""
    assert len(_children_running("gcs_server")) == 1
