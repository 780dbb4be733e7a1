"""The agents layer: torch policies, normalizer, GAE/V-trace, PPO/APPO/SAC/DQN learners,
the replay buffer, checkpoints.

The configs and the Fragment load eagerly (numpy only); everything that needs torch loads
on first use, so `import agents` stays cheap for the CLI.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from rlfarm.agents.config import AlgoConfig, PolicyConfig
from rlfarm.agents.fragment import Fragment, FragmentMeta

if TYPE_CHECKING:  # what editors resolve the lazy names below to
    from rlfarm.agents.acting import ActingPolicy
    from rlfarm.agents.appo import APPOLearner
    from rlfarm.agents.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from rlfarm.agents.device import resolve_device
    from rlfarm.agents.dqn import DQNLearner
    from rlfarm.agents.normalizer import RunningMeanStd
    from rlfarm.agents.numpy_acting import NumpyActingPolicy
    from rlfarm.agents.policy import ActorCritic
    from rlfarm.agents.ppo import PPOLearner
    from rlfarm.agents.replay import ReplayBuffer, replay_bytes
    from rlfarm.agents.sac import SACLearner
    from rlfarm.agents.spaces import ActionSpec

_LAZY = {  # name -> module, for __getattr__; the TYPE_CHECKING block above names the same
    "ActingPolicy": "rlfarm.agents.acting",
    "NumpyActingPolicy": "rlfarm.agents.numpy_acting",
    "ActorCritic": "rlfarm.agents.policy",
    "ActionSpec": "rlfarm.agents.spaces",
    "RunningMeanStd": "rlfarm.agents.normalizer",
    "PPOLearner": "rlfarm.agents.ppo",
    "SACLearner": "rlfarm.agents.sac",
    "DQNLearner": "rlfarm.agents.dqn",
    "ReplayBuffer": "rlfarm.agents.replay",
    "replay_bytes": "rlfarm.agents.replay",
    "APPOLearner": "rlfarm.agents.appo",
    "save_checkpoint": "rlfarm.agents.checkpoint",
    "load_checkpoint": "rlfarm.agents.checkpoint",
    "CheckpointError": "rlfarm.agents.checkpoint",
    "resolve_device": "rlfarm.agents.device",
}

__all__ = ["AlgoConfig", "PolicyConfig", "Fragment", "FragmentMeta", "make_acting_policy", "make_learner",
           "ActingPolicy", "NumpyActingPolicy", "ActorCritic", "ActionSpec", "RunningMeanStd", "PPOLearner",
           "SACLearner", "DQNLearner", "ReplayBuffer", "replay_bytes", "APPOLearner", "save_checkpoint",
           "load_checkpoint", "CheckpointError", "resolve_device"]


def make_acting_policy(obs_space, action_space, policy_cfg: PolicyConfig | None = None, *, seed: int | None = None,
                       algo_cfg: AlgoConfig | None = None, runner_index: int = 0, num_runners: int = 1):
    """The runner's inference copy: a NumpyActingPolicy or a torch ActingPolicy, per
    `policy_cfg.acting_backend` ("auto" takes numpy where the network allows it); for SAC and
    DQN the numpy acting policy of agents/offpolicy_acting.py (runner_index and num_runners
    spread DQN's epsilon across runners when algo.runner_epsilons)."""
    policy_cfg = policy_cfg or PolicyConfig()
    if algo_cfg is not None and algo_cfg.name in ("sac", "dqn"):
        from rlfarm.agents.offpolicy_acting import make_offpolicy_acting

        return make_offpolicy_acting(obs_space, action_space, policy_cfg, algo_cfg, seed=seed,
                                     runner_index=runner_index, num_runners=num_runners)
    if policy_cfg.acts_in_torch:
        from rlfarm.agents.acting import ActingPolicy as acting_class
    else:
        from rlfarm.agents.numpy_acting import NumpyActingPolicy as acting_class
    return acting_class(obs_space, action_space, policy_cfg, seed=seed)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlfarm.agents' has no attribute {name!r}")


def make_learner(obs_space, action_space, policy_cfg: PolicyConfig | None = None,
                 algo_cfg: AlgoConfig | None = None, total_env_steps: int | None = None,
                 device: str = "auto", seed: int | None = None):
    """A PPOLearner, APPOLearner, SACLearner or DQNLearner per `algo_cfg.name`.

    total_env_steps: the run's budget, for linear lr annealing (no annealing without it).
    device: "auto" defers to algo_cfg.device (itself "auto": CUDA where present).
    seed: network init and minibatch order (None: drawn from torch's global RNG).
    """
    algo_cfg = algo_cfg or AlgoConfig()
    if algo_cfg.name == "ppo":
        from rlfarm.agents.ppo import PPOLearner as learner_class
    elif algo_cfg.name == "sac":
        from rlfarm.agents.sac import SACLearner as learner_class
    elif algo_cfg.name == "dqn":
        from rlfarm.agents.dqn import DQNLearner as learner_class
    else:
        from rlfarm.agents.appo import APPOLearner as learner_class
    return learner_class(obs_space, action_space, policy_cfg, algo_cfg, total_env_steps, device, seed)
