"""Shared by the env tests: cheap keywords for the envs whose defaults cost minutes, and a
process check for the bridge tests."""
import pytest

CYLINDER = "rlfarm/CylinderJets-v0"


@pytest.fixture(scope="session")
def cheap_kwargs(tmp_path_factory):
    """env_id -> keywords that make it cheap to test (the cylinder: a coarse lattice whose
    developed state is made once per session, short episodes). Other envs: their defaults."""
    cylinder = {"resolution": 8, "develop_time": 1.5, "probes": "cheap", "control_dt": 0.005,
                "max_episode_steps": 5, "cache_dir": str(tmp_path_factory.mktemp("cylinder_cache"))}
    return lambda env_id: dict(cylinder) if env_id == CYLINDER else {}


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
