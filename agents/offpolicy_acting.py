"""The runners' numpy acting policies for SAC and DQN: exploration lives here.

- SAC samples its tanh-squashed Gaussian, a = scale * tanh(mu + sigma * z) + centre
  (agents/sac.py's SquashedGaussianActor, on the published actor weights);
- DQN acts epsilon-greedily on Q(s, .) (agents/dqn.py's QNetwork); epsilon comes with the
  weights (the learner's schedule), and with `algo.runner_epsilons` runner i of R uses
  epsilon^(1 + 7 i / (R - 1)), Ape-X's spread (Horgan et al. 2018, section 4.1).

Before the learner's first gradient step (weights version 0) both act uniformly at random,
as SB3 and CleanRL do before learning_starts. Deterministic acting (evaluation) takes the
Gaussian's mode or the greedy action. Same interface as NumpyActingPolicy: `set_weights`,
`act`, `value` (zeros: off-policy runners need no values), `env_actions`, `version`.
"""
from __future__ import annotations

import numpy as np

from rlfarm.agents.config import AlgoConfig, PolicyConfig
from rlfarm.agents.numpy_acting import ACTIVATIONS, _Dense
from rlfarm.agents.spaces import ActionSpec

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # as agents/sac.py (that file imports torch; this one must not)
APEX_ALPHA = 7.0


def runner_epsilon(epsilon: float, runner_index: int, num_runners: int) -> float:
    """Ape-X's per-actor rate: epsilon^(1 + alpha i / (N - 1)), alpha = 7 (runner 0 keeps epsilon)."""
    if num_runners <= 1:
        return float(epsilon)
    return float(epsilon) ** (1.0 + APEX_ALPHA * runner_index / (num_runners - 1))


class _OffPolicyActing:
    """Shared: the MLP trunk from published weights, the version, the random start."""

    algo = ""

    def __init__(self, obs_space, action_space, policy_cfg: PolicyConfig, algo_cfg: AlgoConfig, *,
                 seed: int | None = None, runner_index: int = 0, num_runners: int = 1):
        if not policy_cfg.numpy_acting:
            raise ValueError(f"model: {algo_cfg.name} runners act in numpy, which needs trunk mlp and an activation "
                             f"other than gelu; got trunk {policy_cfg.trunk}, activation {policy_cfg.activation}")
        self.cfg, self.algo_cfg = policy_cfg, algo_cfg
        self.obs_shape = tuple(int(s) for s in obs_space.shape)
        self.obs_dim = int(np.prod(self.obs_shape))
        self.action_spec = ActionSpec.from_space(action_space)
        self.rng = np.random.default_rng(seed)
        self.runner_index, self.num_runners = int(runner_index), int(num_runners)
        self._activation = ACTIVATIONS[policy_cfg.activation]
        self._version = -1
        self._trunk: list[_Dense] = []

    @property
    def version(self) -> int:
        return self._version

    def set_weights(self, weights: dict) -> None:
        acting = weights.get("acting") or {}
        if acting.get("algo") != self.algo:
            raise ValueError(f"weights: made by {acting.get('algo') or 'an on-policy learner'}, "
                             f"this runner acts for {self.algo}")
        if int(weights["version"]) != self._version:  # the same version's layers are already built
            params = weights["params"]
            hidden = range(len(self.cfg.hidden_sizes))
            self._trunk = [_Dense(params[f"trunk.{2 * i}.weight"], params[f"trunk.{2 * i}.bias"]) for i in hidden]
            self._install(params)
            self._version = int(weights["version"])
        self._settings(acting)

    def _install(self, params: dict) -> None:
        raise NotImplementedError

    def _settings(self, acting: dict) -> None:
        pass

    def _features(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape[1:] != self.obs_shape:
            raise ValueError(f"obs: expected shape [N, {', '.join(map(str, self.obs_shape))}], got {list(obs.shape)}")
        features = obs.reshape(obs.shape[0], self.obs_dim)
        for layer in self._trunk:
            features = self._activation(layer(features))
        return features

    def value(self, obs: np.ndarray) -> np.ndarray:
        """Zeros [N]: an off-policy learner bootstraps from the final obs itself, not a value."""
        return np.zeros(len(obs), np.float32)

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        if self.action_spec.kind != "box":
            return actions
        return np.clip(actions, self.action_spec.low, self.action_spec.high)


class NumpySACActing(_OffPolicyActing):
    algo = "sac"

    def _install(self, params: dict) -> None:
        self._mean = _Dense(params["mean.weight"], params["mean.bias"])
        self._log_std = _Dense(params["log_std.weight"], params["log_std.bias"])
        self._scale = np.asarray(params["scale"], np.float32)
        self._centre = np.asarray(params["centre"], np.float32)

    def act(self, obs: np.ndarray, deterministic: bool = False):
        """(actions float32 [N, A] inside the bounds, zeros, zeros)."""
        count = len(obs)
        zeros = np.zeros(count, np.float32)
        spec = self.action_spec
        if self._version <= 0 and not deterministic:
            return self.rng.uniform(spec.low, spec.high, (count, *spec.shape)).astype(np.float32), zeros, zeros
        features = self._features(obs)
        u = self._mean(features)
        if not deterministic:
            std = np.exp(np.clip(self._log_std(features), LOG_STD_MIN, LOG_STD_MAX))
            u += std * self.rng.standard_normal(u.shape, np.float32)
        return self._scale * np.tanh(u) + self._centre, zeros, zeros


class NumpyDQNActing(_OffPolicyActing):
    algo = "dqn"
    epsilon = 1.0

    def _install(self, params: dict) -> None:
        self._head = _Dense(params["head.weight"], params["head.bias"])
        self._value = _Dense(params["value.weight"], params["value.bias"]) if "value.weight" in params else None

    def _settings(self, acting: dict) -> None:
        epsilon = float(acting.get("epsilon", 1.0))
        if acting.get("runner_epsilons"):
            epsilon = runner_epsilon(epsilon, self.runner_index, self.num_runners)
        self.epsilon = epsilon

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        features = self._features(obs)
        q = self._head(features)
        if self._value is None:
            return q
        return self._value(features) + q - q.mean(-1, keepdims=True)

    def act(self, obs: np.ndarray, deterministic: bool = False):
        """(actions int64 [N], zeros, zeros): greedy, or uniform with probability epsilon."""
        count = len(obs)
        zeros = np.zeros(count, np.float32)
        num_actions = self.action_spec.nvec[0]
        if self._version <= 0 and not deterministic:
            return self.rng.integers(0, num_actions, count), zeros, zeros
        greedy = self.q_values(obs).argmax(-1).astype(np.int64)
        if deterministic:
            return greedy, zeros, zeros
        explore = self.rng.random(count) < self.epsilon
        return np.where(explore, self.rng.integers(0, num_actions, count), greedy), zeros, zeros


def make_offpolicy_acting(obs_space, action_space, policy_cfg: PolicyConfig, algo_cfg: AlgoConfig, **kwargs):
    acting_class = NumpySACActing if algo_cfg.name == "sac" else NumpyDQNActing
    return acting_class(obs_space, action_space, policy_cfg, algo_cfg, **kwargs)
