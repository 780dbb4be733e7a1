"""NumpyActingPolicy: the runners' inference path for MLP policies, in numpy and without torch.

A runner calls `act` once per step on N observations. At N = 1024 a [64, 64] tanh MLP is
a handful of matrix products, and torch's fixed cost per op (some 25 ops a step) weighs as
much as the arithmetic; numpy's is smaller, and a runner process that never imports torch
starts sooner (docs/results/performance.md has the figures). The layer math is
`ActorCritic`'s (agents/policy.py) and the sampling math is `agents/distributions.py`'s,
on the learner's published weights; tests/agents/test_numpy_acting.py checks the two agree.
CNN trunks and the gelu activation (which needs erf) act through the torch ActingPolicy.
"""
from __future__ import annotations

import math

import numpy as np

from rlfarm.agents.config import NUMPY_ACTIVATIONS, PolicyConfig
from rlfarm.agents.normalizer import RunningMeanStd
from rlfarm.agents.spaces import ActionSpec

ACTIVATIONS = {  # keyed as agents.config.NUMPY_ACTIVATIONS (config imports no numpy)
    "tanh": lambda x: np.tanh(x, out=x),
    "relu": lambda x: np.maximum(x, 0.0, out=x),
    "elu": lambda x: np.where(x > 0.0, x, np.expm1(np.minimum(x, 0.0))),
    "silu": lambda x: np.multiply(x, 0.5 * (1.0 + np.tanh(0.5 * x)), out=x),  # x * sigmoid(x)
}
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _orthogonal(rng: np.random.Generator, rows: int, cols: int, gain: float) -> np.ndarray:
    """An orthogonal [rows, cols] matrix times `gain`, as torch.nn.init.orthogonal_ draws it."""
    flat = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    return (gain * (q if rows >= cols else q.T)).astype(np.float32)


class _Dense:
    """`x @ weight + bias` with weight stored [in, out].

    The bias is kept tiled to the largest batch seen: numpy adds a full [N, out] array in
    one contiguous pass, but broadcasts an [out] row in N short loops, which is slower at
    the runners' batch sizes.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        self.weight = np.ascontiguousarray(np.asarray(weight, np.float32).T)
        self.bias = np.array(bias, np.float32)
        self._tiled = self.bias[None, :]

    def __call__(self, features: np.ndarray) -> np.ndarray:
        out = features @ self.weight
        rows = out.shape[0]
        if self._tiled.shape[0] < rows:
            self._tiled = np.tile(self.bias, (rows, 1))
        out += self._tiled[:rows]
        return out


class NumpyActingPolicy:
    """Acts on batched numpy observations with the weights a learner published.

    The same interface as `agents.ActingPolicy`: `set_weights`, `act`, `value`, `env_actions`
    and `version`. Sampling draws from this policy's own numpy Generator (seeded per runner).
    Before the first `set_weights` it acts with its own orthogonal init (CleanRL's gains).
    """

    def __init__(self, obs_space, action_space, policy_cfg: PolicyConfig | None = None, *, seed: int | None = None):
        self.cfg = policy_cfg or PolicyConfig()
        if not self.cfg.numpy_acting:
            raise ValueError(f"policy: the numpy acting path needs trunk mlp and an activation in "
                             f"{', '.join(NUMPY_ACTIVATIONS)}; got trunk {self.cfg.trunk}, activation {self.cfg.activation}")
        self.obs_shape = tuple(int(s) for s in obs_space.shape)
        self.obs_dim = int(np.prod(self.obs_shape))
        self.action_spec = ActionSpec.from_space(action_space)
        self.rng = np.random.default_rng(seed)
        self._activation = ACTIVATIONS[self.cfg.activation]
        self._version = -1
        self._normalizer: tuple[np.ndarray, np.ndarray, float] | None = None
        self._install(self._initial_params())

    @property
    def version(self) -> int:
        """Policy version of the installed weights (-1 before the first set_weights)."""
        return self._version

    def _trunk_names(self) -> list[str]:
        return ["actor_trunk"] + ([] if self.cfg.shared_trunk else ["critic_trunk"])

    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        """ActorCritic's state_dict names and shapes for an MLP trunk."""
        shapes: dict[str, tuple[int, ...]] = {}
        for trunk in self._trunk_names():
            in_dim = self.obs_dim
            for i, width in enumerate(self.cfg.hidden_sizes):
                shapes[f"{trunk}.net.{2 * i}.weight"], shapes[f"{trunk}.net.{2 * i}.bias"] = (width, in_dim), (width,)
                in_dim = width
        width, outputs = self.cfg.hidden_sizes[-1], self.action_spec.num_outputs
        shapes.update({"actor_head.weight": (outputs, width), "actor_head.bias": (outputs,),
                       "critic_head.weight": (1, width), "critic_head.bias": (1,)})
        if self.action_spec.kind == "box":
            shapes["log_std"] = (outputs,)
        return shapes

    def _initial_params(self) -> dict[str, np.ndarray]:
        """Orthogonal weights with ActorCritic's gains (hidden sqrt 2, actor 0.01, critic 1), zero biases."""
        gains = {"actor_head": 0.01, "critic_head": 1.0}
        params = {}
        for name, shape in self._param_shapes().items():
            if name.endswith(".weight"):
                params[name] = _orthogonal(self.rng, *shape, gains.get(name.split(".")[0], math.sqrt(2.0)))
            else:
                params[name] = np.full(shape, self.cfg.init_log_std if name == "log_std" else 0.0, np.float32)
        return params

    def set_weights(self, weights: dict) -> None:
        """Install {"version", "params": {name: ndarray}, "normalizer": {...} or None}."""
        self._install(weights["params"])
        normalizer = weights.get("normalizer")
        if normalizer is None:
            self._normalizer = None
        else:
            stats = RunningMeanStd(self.obs_shape, clip=normalizer.get("clip", 10.0))
            stats.load_state_dict(normalizer)
            inv_std = 1.0 / np.sqrt(stats.var + stats.epsilon)
            self._normalizer = (stats.mean.astype(np.float32).ravel(), inv_std.astype(np.float32).ravel(), stats.clip)
        self._version = int(weights["version"])

    def _install(self, params: dict) -> None:
        """Check names and shapes against ActorCritic's, then build the dense layers."""
        expected = self._param_shapes()
        got = {name: tuple(np.shape(value)) for name, value in params.items()}
        if got != expected:
            wrong = sorted(set(expected) ^ set(got)) or sorted(n for n in expected if got[n] != expected[n])
            raise ValueError(f"weights: do not fit this policy (check {', '.join(wrong)})")

        def layer(name: str) -> _Dense:
            return _Dense(params[f"{name}.weight"], params[f"{name}.bias"])

        hidden = range(len(self.cfg.hidden_sizes))
        self._trunks = [[layer(f"{trunk}.net.{2 * i}") for i in hidden] for trunk in self._trunk_names()]
        self._actor_head, self._critic_head = layer("actor_head"), layer("critic_head")
        self._log_std = np.array(params["log_std"], np.float32) if "log_std" in params else None

    # ---- forward -------------------------------------------------------------------------
    def _inputs(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape[1:] != self.obs_shape:
            raise ValueError(f"obs: expected shape [N, {', '.join(map(str, self.obs_shape))}], got {list(obs.shape)}")
        flat = obs.reshape(obs.shape[0], self.obs_dim)
        if self._normalizer is None:
            return flat
        mean, inv_std, clip = self._normalizer
        return np.clip((flat - mean) * inv_std, -clip, clip)

    def _trunk(self, layers: list[_Dense], features: np.ndarray) -> np.ndarray:
        for layer in layers:
            features = self._activation(layer(features))
        return features

    def _forward(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        actor_features = self._trunk(self._trunks[0], inputs)
        critic_features = actor_features if self.cfg.shared_trunk else self._trunk(self._trunks[1], inputs)
        return self._actor_head(actor_features), self._critic_head(critic_features)[:, 0]

    def act(self, obs: np.ndarray, deterministic: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actions, log-probs float32 [N], values float32 [N]) for obs [N, *obs_shape].

        Box actions are the unclipped Gaussian sample (their log-prob is that sample's);
        pass them through `env_actions` before `env.step`.
        """
        head_out, values = self._forward(self._inputs(obs))
        if self.action_spec.kind == "box":
            actions, logp = self._gaussian(head_out, deterministic)
        else:
            actions, logp = self._categorical(head_out, deterministic)
        return actions, logp.astype(np.float32, copy=False), values

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) float32 [N] (e.g. of final observations, to bootstrap truncated episodes)."""
        inputs = self._inputs(obs)
        trunk = self._trunks[0] if self.cfg.shared_trunk else self._trunks[1]
        return self._critic_head(self._trunk(trunk, inputs))[:, 0]

    def _gaussian(self, mean: np.ndarray, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
        std = np.exp(self._log_std)
        noise = np.zeros_like(mean) if deterministic else self.rng.standard_normal(mean.shape, np.float32)
        actions = mean + noise * std
        logp = (-0.5 * np.square(noise) - self._log_std - LOG_SQRT_2PI).sum(-1)
        return actions, logp

    def _categorical(self, logits: np.ndarray, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
        """Inverse-CDF sampling per sub-action (a loop over the few sub-actions, not over rows).

        The logits are transposed to [categories, N] first: numpy reduces a short last axis
        one row at a time, a leading axis in one pass.
        """
        columns = np.ascontiguousarray(logits.T)
        rows = np.arange(columns.shape[1])
        actions, logp, start = [], np.zeros(columns.shape[1], np.float32), 0
        for size in self.action_spec.nvec:
            part = columns[start:start + size]
            start += size
            shifted = part - part.max(0)
            unnormalized = np.exp(shifted)
            total = unnormalized.sum(0)
            if deterministic:
                choice = part.argmax(0)
            else:
                cdf = np.cumsum(unnormalized, 0)
                uniform = self.rng.random(part.shape[1], np.float32) * total
                choice = np.minimum((uniform >= cdf).sum(0), size - 1)
            actions.append(choice)
            logp += shifted[choice, rows] - np.log(total)
        if self.action_spec.kind == "discrete":
            return actions[0].astype(np.int64), logp
        return np.stack(actions, 1).astype(np.int64), logp

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        """Actions as the env takes them: Box actions clipped to their bounds, others unchanged."""
        if self.action_spec.kind != "box":
            return actions
        return np.clip(actions, self.action_spec.low, self.action_spec.high)
