"""The agents layer's own configs: the network (PolicyConfig) and the algorithm (AlgoConfig).

Both validate themselves on construction and raise ``ValueError("field: what is wrong")``,
so `experiments/config.py` can prefix the section name ("algo.lr: ...") and print one line.
This module imports neither torch nor numpy: the CLI imports it at start-up.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "silu")
TRUNKS = ("mlp", "cnn")
ALGOS = ("ppo", "appo")
DEVICES = ("auto", "cpu", "cuda")
ACTING_BACKENDS = ("auto", "numpy", "torch")
NUMPY_ACTIVATIONS = ("tanh", "relu", "elu", "silu")  # gelu needs erf, which numpy lacks


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
    """The learning algorithm: PPO (on-policy) or APPO (asynchronous PPO over V-trace)."""

    ONLY_FOR: ClassVar[dict[str, str]] = {"vtrace": "appo", "rho_bar": "appo", "c_bar": "appo"}
    """Fields that only one algorithm reads (field -> algo name); a display of the config can
    leave them out of the others'."""

    name: str = "ppo"
    """`ppo` or `appo`."""

    lr: float = 2.5e-4
    """Adam learning rate (annealed linearly to 0 over the run when `anneal_lr`)."""

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

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check(self.name in ALGOS, "name", f"must be one of {', '.join(ALGOS)}, got {self.name!r}")
        _check(self.device in DEVICES, "device", f"must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for name in ("anneal_lr", "anneal_clip", "clip_vloss", "cuda_graphs", "normalize_adv", "normalize_obs", "vtrace"):
            value = getattr(self, name)
            _check(isinstance(value, bool), name, f"must be true or false, got {value!r}")
        for name in ("epochs", "minibatches", "max_skipped_updates"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, name, f"must be an int >= 1, got {value!r}")
        ranges = {  # name: (low, high, low_inclusive)
            "lr": (0.0, 1.0, False), "gamma": (0.0, 1.0, True), "gae_lambda": (0.0, 1.0, True),
            "clip_coef": (0.0, 10.0, False), "ent_coef": (0.0, 1.0, True), "vf_coef": (0.0, 100.0, True),
            "max_grad_norm": (0.0, 1e6, False), "obs_clip": (0.0, 1e6, False),
            "rho_bar": (0.0, 1e6, False), "c_bar": (0.0, 1e6, False),
        }
        for name, (low, high, low_inclusive) in ranges.items():
            value = getattr(self, name)
            ok = _is_number(value) and (value >= low if low_inclusive else value > low) and value <= high
            bracket = "[" if low_inclusive else "("
            _check(ok, name, f"must be a number in {bracket}{low:g}, {high:g}], got {value!r}")
        _check(self.target_kl is None or (_is_number(self.target_kl) and self.target_kl > 0), "target_kl",
               f"must be null or a number > 0, got {self.target_kl!r}")
