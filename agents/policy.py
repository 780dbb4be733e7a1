"""The actor-critic network: an MLP or a small CNN trunk, and heads for every action kind.

Orthogonal init as in CleanRL: hidden layers gain sqrt(2), the actor's output 0.01 (a nearly
uniform / zero-mean initial policy), the critic's output 1.0; biases 0.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from rlfarm.agents import distributions
from rlfarm.agents.config import PolicyConfig
from rlfarm.agents.distributions import ActionSpec

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


def layer_init(layer: nn.Module, std: float = math.sqrt(2.0), bias: float = 0.0,
               generator: torch.Generator | None = None) -> nn.Module:
    """Orthogonal weights with gain `std`, constant bias (as CleanRL). The gain and bias are
    kept on the layer, so that `seeded_init` can draw the weights again from a generator."""
    nn.init.orthogonal_(layer.weight, std, generator=generator)
    nn.init.constant_(layer.bias, bias)
    layer.init_gain, layer.init_bias = std, bias
    return layer


def seeded_init(model: nn.Module, seed: int) -> nn.Module:
    """Draw every `layer_init` layer's weights again, in module order, from a local generator
    seeded with `seed`: the model then depends on the seed only, not on the process-global
    torch RNG that concurrent trainings in threads share (issue 26)."""
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "init_gain"):
                layer_init(module, module.init_gain, module.init_bias, generator=generator)
    return model


def mlp(in_dim: int, hidden_sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [layer_init(nn.Linear(in_dim, width)), ACTIVATIONS[activation]()]
        in_dim = width
    return nn.Sequential(*layers)


def infer_field_layout(obs_shape: tuple[int, ...], field_shape: list[int] | None) -> tuple[int, int, int, int]:
    """(channels, H, W, extra features) for a CNN on obs of `obs_shape`.

    2-D obs [H, W] and 3-D obs [C, H, W] are fields as they are. Flat obs [D] hold a field of
    `field_shape` (or a square one when D = n*n) followed by D - H*W extra features.
    """
    if len(obs_shape) == 3:
        return obs_shape[0], obs_shape[1], obs_shape[2], 0
    if len(obs_shape) == 2:
        return 1, obs_shape[0], obs_shape[1], 0
    if len(obs_shape) != 1:
        raise ValueError(f"trunk: cnn needs 1-D, 2-D or 3-D observations, got shape {obs_shape}")
    dim = obs_shape[0]
    if field_shape is None:
        side = int(round(math.sqrt(dim)))
        if side * side != dim:
            raise ValueError(f"field_shape: obs of length {dim} is not a square field; "
                             "set policy field_shape: [H, W] (extra features may follow the field)")
        return 1, side, side, 0
    height, width = field_shape
    if height * width > dim:
        raise ValueError(f"field_shape: {height}x{width} = {height * width} exceeds the obs length {dim}")
    return 1, height, width, dim - height * width


class FieldCNN(nn.Module):
    """3x3 convs (stride 2 after the first) over a 2-D field, then an MLP; extra flat
    features, if any, join the conv features before the MLP."""

    def __init__(self, obs_shape: tuple[int, ...], cfg: PolicyConfig):
        super().__init__()
        self.channels, self.height, self.width, self.extra = infer_field_layout(obs_shape, cfg.field_shape)
        self.obs_ndim = len(obs_shape)
        layers: list[nn.Module] = []
        in_channels = self.channels
        for i, out_channels in enumerate(cfg.cnn_channels):
            layers += [layer_init(nn.Conv2d(in_channels, out_channels, 3, stride=1 if i == 0 else 2, padding=1)),
                       ACTIVATIONS[cfg.activation]()]
            in_channels = out_channels
        layers.append(nn.Flatten())
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            conv_dim = self.convs(torch.zeros(1, self.channels, self.height, self.width)).shape[1]
        self.mlp = mlp(conv_dim + self.extra, cfg.hidden_sizes, cfg.activation)
        self.out_dim = cfg.hidden_sizes[-1]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch = obs.shape[0]
        if self.obs_ndim == 1:
            flat = obs
            field_size = self.height * self.width
            field = flat[:, :field_size].reshape(batch, 1, self.height, self.width)
            features = self.convs(field)
            if self.extra:
                features = torch.cat([features, flat[:, field_size:]], dim=1)
        else:
            features = self.convs(obs.reshape(batch, self.channels, self.height, self.width))
        return self.mlp(features)


class MLPTrunk(nn.Module):
    def __init__(self, obs_shape: tuple[int, ...], cfg: PolicyConfig):
        super().__init__()
        self.net = mlp(int(np.prod(obs_shape)), cfg.hidden_sizes, cfg.activation)
        self.out_dim = cfg.hidden_sizes[-1]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.reshape(obs.shape[0], -1))


def make_trunk(obs_shape: tuple[int, ...], cfg: PolicyConfig) -> nn.Module:
    return FieldCNN(obs_shape, cfg) if cfg.trunk == "cnn" else MLPTrunk(obs_shape, cfg)


class ActorCritic(nn.Module):
    """pi(a|s) and V(s) on normalized observations; `forward` gives both in one pass."""

    def __init__(self, obs_shape: tuple[int, ...], action_spec: ActionSpec, cfg: PolicyConfig):
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.action_spec = action_spec
        self.actor_trunk = make_trunk(self.obs_shape, cfg)
        self.shared = cfg.shared_trunk
        self.critic_trunk = None if self.shared else make_trunk(self.obs_shape, cfg)
        self.actor_head = layer_init(nn.Linear(self.actor_trunk.out_dim, action_spec.num_outputs), std=0.01)
        self.critic_head = layer_init(nn.Linear(self.actor_trunk.out_dim, 1), std=1.0)
        if action_spec.kind == "box":
            self.log_std = nn.Parameter(torch.full((action_spec.num_outputs,), float(cfg.init_log_std)))
        else:
            self.log_std = None

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(head output: logits or Gaussian mean, value [B])."""
        actor_features = self.actor_trunk(obs)
        critic_features = actor_features if self.shared else self.critic_trunk(obs)
        return self.actor_head(actor_features), self.critic_head(critic_features).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        trunk = self.actor_trunk if self.shared else self.critic_trunk
        return self.critic_head(trunk(obs)).squeeze(-1)

    def act(self, obs: torch.Tensor, generator: torch.Generator | None = None, deterministic: bool = False):
        """(actions, log-probs, values) in one forward pass."""
        head_out, values = self(obs)
        actions = distributions.sample(self.action_spec, head_out, self.log_std, generator, deterministic)
        logp = distributions.log_prob(self.action_spec, head_out, self.log_std, actions)
        return actions, logp, values

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor):
        """(log-probs of `actions`, entropies, values): what the learner's loss needs."""
        head_out, values = self(obs)
        logp = distributions.log_prob(self.action_spec, head_out, self.log_std, actions)
        ent = distributions.entropy(self.action_spec, head_out, self.log_std)
        return logp, ent, values
