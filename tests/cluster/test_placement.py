"""Runners land on CPU nodes and learners on GPU nodes, as farm.*_resources say.

A real multi-node Ray on one machine (`ray.cluster_utils.Cluster`): a head with no CPUs
for actors, a "cpu node" with a custom resource, a "gpu node" with one logical GPU.
"""
from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from rlfarm.cluster.placement import actor_options, check_fits  # noqa: E402
from rlfarm.cluster.ray_farm import RayFarm  # noqa: E402


@pytest.fixture(scope="module")
def three_nodes():
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster()
    cluster.add_node(num_cpus=0)  # the head: drivers only
    cpu_node = cluster.add_node(num_cpus=2, resources={"cpu_node": 2}, labels={"rlfarm/role": "sampler"})
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1, resources={"gpu_node": 1})
    ray.init(address=cluster.address)
    yield {"cpu": cpu_node.node_id, "gpu": gpu_node.node_id}
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
def test_runners_on_the_cpu_node_and_the_learner_on_the_gpu_node(three_nodes, cartpole):
    cfgs = cartpole(num_runners=2, envs_per_runner=8,
                    runner_resources={"num_cpus": 1, "resources": {"cpu_node": 1}},
                    learner_resources={"num_cpus": 1, "num_gpus": 1})
    farm = RayFarm(*cfgs, seed=0, total_env_steps=None)
    try:
        where = farm.placements()
        result = farm.iterate()
    finally:
        farm.close()
    assert [p["node_id"] for p in where["runners"]] == [three_nodes["cpu"]] * 2
    (learner,) = where["learners"]
    assert learner["node_id"] == three_nodes["gpu"]
    assert learner["gpu_ids"] == ["0"]  # Ray gave it the logical GPU ...
    assert learner["device"] == "cpu"   # ... which CUDA cannot see here: CPU fallback
    assert result["env_steps"] == 2 * 32 * 8


@pytest.mark.slow  # a three-node local Ray for the module: about a minute on 2 loaded cores
def test_label_selector_places_runners_by_node_label(three_nodes, cartpole):
    cfgs = cartpole(num_runners=1, envs_per_runner=8,
                    runner_resources={"num_cpus": 1, "label_selector": {"rlfarm/role": "sampler"}},
                    learner_resources={"num_cpus": 0, "resources": {"gpu_node": 0.5}})
    farm = RayFarm(*cfgs, seed=0, total_env_steps=None)
    try:
        where = farm.placements()
    finally:
        farm.close()
    assert where["runners"][0]["node_id"] == three_nodes["cpu"]
    assert where["learners"][0]["node_id"] == three_nodes["gpu"]


@pytest.mark.slow
def test_requirements_no_node_has_fail_with_the_field_name(three_nodes):
    with pytest.raises(ValueError, match=r"farm.runner_resources.resources.fpga_node"):
        check_fits(actor_options({"resources": {"fpga_node": 1}}, "farm.runner_resources"),
                   "farm.runner_resources")
    with pytest.raises(ValueError, match=r"farm.learner_resources: unknown key"):
        actor_options({"gpus": 1}, "farm.learner_resources")
