"""The agents layer's own configs: the network (PolicyConfig) and the algorithm (AlgoConfig).

Both validate themselves on construction and raise ``ValueError("field: what is wrong")``,
so `experiments/config.py` can prefix the section name ("algo.lr: ...") and print one line.
This module imports neither torch nor numpy: the CLI imports it at start-up.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Optional

ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "silu")
TRUNKS = ("mlp", "cnn")
ALGOS = ("ppo", "appo", "sac", "dqn")
ON_POLICY = ("ppo", "appo")
OFF_POLICY = ("sac", "dqn")
DEVICES = ("auto", "cpu", "cuda")
ACTING_BACKENDS = ("auto", "numpy", "torch")
NUMPY_ACTIVATIONS = ("tanh", "relu", "elu", "silu")  # gelu needs erf, which numpy lacks


def replay_bytes(capacity: int, obs_shape, action_shape=(), action_itemsize: int = 8) -> int:
    """Bytes an agents.ReplayBuffer of `capacity` transitions holds: obs and next_obs (float32),
    the actions (`action_itemsize` bytes each: 8 for int64 discrete, 4 for float32 Box), reward
    and discount (float32). Here, without numpy or torch, for the CLI's capacity check."""
    obs_size, action_size = math.prod(int(s) for s in obs_shape), math.prod(int(s) for s in action_shape)
    return int(capacity) * (2 * 4 * obs_size + action_itemsize * action_size + 4 + 4)


def _check(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{field_name}: {message}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class PolicyConfig:
    """The actor-critic network. Actor and critic have separate trunks unless `shared_trunk`."""

    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Widths of the MLP layers (after the CNN, for trunk=cnn)."""

    activation: str = "tanh"
    """Nonlinearity between layers: tanh | relu | elu | gelu | silu."""

    trunk: str = "mlp"
    """`mlp` for flat observations; `cnn` for 2-D fields (e.g. HeatControl's n x n grid)."""

    shared_trunk: bool = False
    """One trunk feeding both heads (cheaper) instead of separate actor and critic trunks
    (CleanRL's default, usually more stable)."""

    cnn_channels: list[int] = field(default_factory=lambda: [16, 32])
    """trunk=cnn: output channels of the 3x3 conv layers; each after the first has stride 2."""

    field_shape: Optional[list[int]] = None
    """trunk=cnn: [H, W] of the field. None infers it: 2-D obs are the field, flat obs of
    length n*n are a square field. Flat obs longer than H*W carry extra features after the
    field; they join the CNN features before the MLP."""

    init_log_std: float = 0.0
    """Box actions: initial log standard deviation of the Gaussian (state-independent)."""

    acting_backend: str = "auto"
    """How runners compute actions: `numpy` (MLP trunks, activation not gelu; faster than
    torch at the runners' batch sizes, and runner processes never import torch), `torch` (any
    network), or `auto` (numpy where it applies). The learner always trains in torch."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check(isinstance(self.hidden_sizes, (list, tuple)) and len(self.hidden_sizes) > 0
               and all(_is_int(h) and h > 0 for h in self.hidden_sizes),
               "hidden_sizes", f"must be a non-empty list of positive ints, got {self.hidden_sizes!r}")
        self.hidden_sizes = list(self.hidden_sizes)
        _check(self.activation in ACTIVATIONS, "activation",
               f"must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        _check(self.trunk in TRUNKS, "trunk", f"must be one of {', '.join(TRUNKS)}, got {self.trunk!r}")
        _check(isinstance(self.shared_trunk, bool), "shared_trunk", f"must be true or false, got {self.shared_trunk!r}")
        _check(isinstance(self.cnn_channels, (list, tuple)) and len(self.cnn_channels) > 0
               and all(_is_int(c) and c > 0 for c in self.cnn_channels),
               "cnn_channels", f"must be a non-empty list of positive ints, got {self.cnn_channels!r}")
        self.cnn_channels = list(self.cnn_channels)
        if self.field_shape is not None:
            _check(isinstance(self.field_shape, (list, tuple)) and len(self.field_shape) == 2
                   and all(_is_int(s) and s > 0 for s in self.field_shape),
                   "field_shape", f"must be null or [H, W] with positive ints, got {self.field_shape!r}")
            self.field_shape = list(self.field_shape)
        _check(_is_number(self.init_log_std) and -10 <= self.init_log_std <= 5, "init_log_std",
               f"must be a number in [-10, 5], got {self.init_log_std!r}")
        _check(self.acting_backend in ACTING_BACKENDS, "acting_backend",
               f"must be one of {', '.join(ACTING_BACKENDS)}, got {self.acting_backend!r}")
        _check(self.acting_backend != "numpy" or self.numpy_acting, "acting_backend",
               f"numpy needs trunk mlp and an activation in {', '.join(NUMPY_ACTIVATIONS)} "
               f"(got trunk {self.trunk}, activation {self.activation}); use torch or auto")

    @property
    def numpy_acting(self) -> bool:
        """Whether runners can act through the numpy forward (agents/numpy_acting.py)."""
        return self.trunk == "mlp" and self.activation in NUMPY_ACTIVATIONS

    @property
    def acts_in_torch(self) -> bool:
        """Whether runners act through torch: asked for, or the network needs it."""
        return self.acting_backend == "torch" or not self.numpy_acting


@dataclass
class AlgoConfig:
    """The learning algorithm: PPO (on-policy), APPO (asynchronous PPO over V-trace), SAC
    (off-policy, Box actions) or DQN (off-policy, Discrete actions)."""

    READ_BY: ClassVar[dict[str, tuple[str, ...]]] = {
        **{name: ON_POLICY for name in ("anneal_lr", "gae_lambda", "clip_coef", "anneal_clip", "target_kl",
                                        "clip_vloss", "epochs", "minibatches", "ent_coef", "vf_coef",
                                        "normalize_adv", "normalize_obs", "obs_clip", "cuda_graphs")},
        **{name: ("appo",) for name in ("vtrace", "rho_bar", "c_bar")},
        "max_grad_norm": ("ppo", "appo", "dqn"),
        **{name: OFF_POLICY for name in ("learning_starts", "replay_size", "batch_size", "updates_per_step",
                                         "tau", "publish_every")},
        **{name: ("sac",) for name in ("init_alpha", "autotune_alpha", "target_entropy")},
        **{name: ("dqn",) for name in ("n_step", "target_update_every", "epsilon_start", "epsilon_end",
                                       "epsilon_fraction", "runner_epsilons", "dueling", "double_q")},
    }
    """Fields that only some algorithms read (field -> algo names; the rest are read by all);
    a display of the config leaves them out of the others' (`unread_fields`)."""

    name: str = "ppo"
    """`ppo`, `appo`, `sac` or `dqn`."""

    lr: float = 2.5e-4
    """Adam learning rate (PPO/APPO: annealed linearly to 0 over the run when `anneal_lr`;
    SAC: of the actor, the critics and the temperature alike)."""

    anneal_lr: bool = True
    """Linearly decay lr to 0 at total_env_steps (needs the run's total env steps)."""

    gamma: float = 0.99
    """Discount factor."""

    gae_lambda: float = 0.95
    """GAE lambda; also the trace-cutting lambda in V-trace's c coefficients."""

    clip_coef: float = 0.2
    """PPO ratio clip range epsilon (annealed linearly to 0 over the run when `anneal_clip`)."""

    anneal_clip: bool = False
    """Linearly decay clip_coef to 0 at total_env_steps, as rl-zoo's tuned PPO does (`lin_0.2`):
    late updates move the policy less, so a solved policy stays solved."""

    target_kl: Optional[float] = None
    """Stop an update's remaining epochs once the mean approx KL of an epoch exceeds this
    (CleanRL's `--target-kl`); null never stops early."""

    clip_vloss: bool = False
    """Clip the value loss around the behaviour values with clip_coef (CleanRL's option)."""

    epochs: int = 4
    """Passes over each batch."""

    minibatches: int = 4
    """Minibatches per epoch (the batch is split by a random permutation on the device)."""

    ent_coef: float = 0.0
    """Entropy bonus coefficient."""

    vf_coef: float = 0.5
    """Value loss coefficient."""

    max_grad_norm: float = 0.5
    """Global gradient norm clip."""

    normalize_adv: bool = True
    """Normalize advantages per minibatch."""

    normalize_obs: bool = True
    """Running mean/std observation normalization owned by the learner."""

    obs_clip: float = 10.0
    """Normalized observations are clipped to [-obs_clip, obs_clip]."""

    vtrace: bool = True
    """APPO: V-trace targets with the current value net. False falls back to GAE on the
    behaviour (stale) values, with the same clipped surrogate."""

    rho_bar: float = 1.0
    """V-trace: clip of the importance ratio in the TD errors and policy-gradient advantages."""

    c_bar: float = 1.0
    """V-trace: clip of the importance ratio in the trace coefficients c."""

    device: str = "auto"
    """auto (CUDA where present) | cpu | cuda."""

    cuda_graphs: bool = True
    """On CUDA, replay each minibatch step as one captured CUDA graph (the same math; a small
    network's step is otherwise bound by kernel launches). false runs it eagerly, for debugging."""

    max_skipped_updates: int = 10
    """Updates in a row whose loss or gradient is NaN/Inf (each one skipped, the weights kept)
    after which the run stops with exit 1: the data or the settings are broken."""

    # ---- off-policy (SAC, DQN) ----
    learning_starts: int = 1000
    """SAC/DQN: env steps in the replay buffer before the first gradient step (the runners
    act with their initial policy, or DQN's epsilon-greedy, until then)."""

    replay_size: int = 1_000_000
    """SAC/DQN: transitions the replay buffer holds (the oldest go first); its memory counts
    in `rlfarm capacity`'s estimate."""

    batch_size: int = 256
    """SAC/DQN: transitions per gradient step, drawn uniformly from the replay buffer."""

    updates_per_step: float = 1.0
    """SAC/DQN: the update-to-data ratio, gradient steps per env step consumed (0.5: one
    gradient step every two env steps). Exact in serial mode; in Ray mode within the
    tolerance docs/learning.md states."""

    tau: float = 0.005
    """SAC/DQN: Polyak rate of the target networks, target <- tau * online + (1 - tau) * target
    (1.0: a hard copy)."""

    publish_every: int = 1
    """SAC/DQN: gradient steps between new weights for the runners (each is a new version)."""

    init_alpha: float = 1.0
    """SAC: the entropy temperature alpha at the start."""

    autotune_alpha: bool = True
    """SAC: tune alpha so that the policy's entropy tracks `target_entropy` (Haarnoja et al.
    2018, section 5); false keeps alpha at init_alpha."""

    target_entropy: Optional[float] = None
    """SAC: the entropy alpha is tuned to; null means -(action dimensions), the paper's choice."""

    n_step: int = 1
    """DQN: steps of reward summed before the target bootstraps (a window ends early at an
    episode's end and at a fragment's last row)."""

    target_update_every: int = 1
    """DQN: gradient steps between target network updates (each by `tau`; rl-zoo's CartPole
    copies hard, tau 1, every few steps)."""

    epsilon_start: float = 1.0
    """DQN: exploration rate at the start."""

    epsilon_end: float = 0.05
    """DQN: exploration rate at the end of the decay."""

    epsilon_fraction: float = 0.1
    """DQN: fraction of the run's env steps over which epsilon decays linearly from
    epsilon_start to epsilon_end."""

    runner_epsilons: bool = False
    """DQN: runner i of R explores with epsilon^(1 + 7 i / (R - 1)) instead of epsilon, a
    spread of exploration rates across runners as in Ape-X (Horgan et al. 2018)."""

    dueling: bool = False
    """DQN: a dueling head, Q = V + A - mean(A) (Wang et al. 2016), instead of a plain one."""

    double_q: bool = True
    """DQN: double Q-learning targets, Q'(s', argmax Q(s', .)) (van Hasselt et al. 2016); false:
    the original max Q'(s', .), which Stable-Baselines3's DQN uses and rl-zoo's settings were tuned with."""

    def unread_fields(self) -> list[str]:
        """The fields this config's algorithm does not read (left out of its displayed config)."""
        return [name for name, algos in self.READ_BY.items() if self.name not in algos]

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check(self.name in ALGOS, "name", f"must be one of {', '.join(ALGOS)}, got {self.name!r}")
        _check(self.device in DEVICES, "device", f"must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for name in ("anneal_lr", "anneal_clip", "clip_vloss", "cuda_graphs", "normalize_adv", "normalize_obs", "vtrace"):
            value = getattr(self, name)
            _check(isinstance(value, bool), name, f"must be true or false, got {value!r}")
        for name in ("autotune_alpha", "runner_epsilons", "dueling", "double_q"):
            value = getattr(self, name)
            _check(isinstance(value, bool), name, f"must be true or false, got {value!r}")
        _check(_is_int(self.learning_starts) and self.learning_starts >= 0, "learning_starts",
               f"must be an int >= 0, got {self.learning_starts!r}")
        for name in ("epochs", "minibatches", "max_skipped_updates", "replay_size", "batch_size",
                     "publish_every", "n_step", "target_update_every"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, name, f"must be an int >= 1, got {value!r}")
        ranges = {  # name: (low, high, low_inclusive)
            "lr": (0.0, 1.0, False), "gamma": (0.0, 1.0, True), "gae_lambda": (0.0, 1.0, True),
            "clip_coef": (0.0, 10.0, False), "ent_coef": (0.0, 1.0, True), "vf_coef": (0.0, 100.0, True),
            "max_grad_norm": (0.0, 1e6, False), "obs_clip": (0.0, 1e6, False),
            "rho_bar": (0.0, 1e6, False), "c_bar": (0.0, 1e6, False),
            "updates_per_step": (0.0, 1000.0, False), "tau": (0.0, 1.0, False), "init_alpha": (0.0, 1e6, False),
            "epsilon_start": (0.0, 1.0, True), "epsilon_end": (0.0, 1.0, True), "epsilon_fraction": (0.0, 1.0, True),
        }
        for name, (low, high, low_inclusive) in ranges.items():
            value = getattr(self, name)
            ok = _is_number(value) and (value >= low if low_inclusive else value > low) and value <= high
            bracket = "[" if low_inclusive else "("
            _check(ok, name, f"must be a number in {bracket}{low:g}, {high:g}], got {value!r}")
        _check(self.target_kl is None or (_is_number(self.target_kl) and self.target_kl > 0), "target_kl",
               f"must be null or a number > 0, got {self.target_kl!r}")
        _check(self.target_entropy is None or _is_number(self.target_entropy), "target_entropy",
               f"must be null or a number, got {self.target_entropy!r}")
        _check(self.n_step <= 100, "n_step", f"must be at most 100, got {self.n_step!r}")
        _check(self.batch_size <= self.replay_size, "batch_size",
               f"must be at most replay_size ({self.replay_size}), got {self.batch_size}")
