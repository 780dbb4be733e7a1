"""Thread-safe seeding (issue 26, case 4): two `rlfarm.train` calls in threads of one process
give the same results for the same seed as one call alone. The model is initialised from a
local torch.Generator (agents/policy.py `seeded_init`), not the process-global torch RNG that
the threads share (a third thread reseeds and draws from that RNG all along). Compared within
one process, where the same seed gives the same floats."""
from __future__ import annotations

import sys
import threading

import numpy as np
import torch

import rlfarm

from .conftest import SMALL_CARTPOLE, merge


def _final_weights(run) -> dict[str, np.ndarray]:
    state = torch.load(run.summary["last_checkpoint"], map_location="cpu", weights_only=False)
    model = state["learner"]["model"]
    return {name: tensor.numpy() for name, tensor in model.items()}


def test_concurrent_trainings_equal_a_sequential_one(write_config, tmp_path):
    configs = [write_config(merge(SMALL_CARTPOLE, {"name": f"t{k}", "stop": {"env_steps": 1024}})) for k in range(3)]
    alone = rlfarm.train(str(configs[0]))
    runs: dict[int, object] = {}
    errors: list[BaseException] = []

    def train(k: int) -> None:
        try:
            runs[k] = rlfarm.train(str(configs[k]))
        except BaseException as err:  # noqa: BLE001 - reported by the test
            errors.append(err)

    done = threading.Event()

    def other_user_of_the_global_rng() -> None:  # as a third training's seeding would
        seed = 0
        while not done.is_set():
            seed += 1
            torch.manual_seed(seed)
            torch.rand(64)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads take turns often, as on a busy machine
    noise = threading.Thread(target=other_user_of_the_global_rng)
    noise.start()
    threads = [threading.Thread(target=train, args=(k,)) for k in (1, 2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        done.set()
        noise.join()
        sys.setswitchinterval(switch)
    assert not errors, errors
    expected = _final_weights(alone)
    for k in (1, 2):
        got = _final_weights(runs[k])
        assert got.keys() == expected.keys()
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
        assert runs[k].summary["env_steps"] == alone.summary["env_steps"]
