"""Experiment configs: YAML (safe_load only) composed into each layer's own dataclass.

    name: cartpole-ppo      seed: 0
    env:   envs.EnvConfig          (id, envs_per_runner, kwargs, ...)
    model: agents.PolicyConfig     (hidden_sizes, activation, trunk, ...)
    algo:  agents.AlgoConfig       (name, lr, gamma, ...)
    farm:  cluster.FarmConfig      (mode, num_runners, fragment_length, ...)
    stop:  StopConfig              (env_steps, wall_s, target_return)
    log:   LogConfig               (dir, report_interval_s, checkpoint_interval_s, ...)

This module only composes: the layers validate their own fields (they raise
ValueError("field: what is wrong"), which becomes ConfigError("section.field: ...")). Types
are checked here from the dataclasses' annotations, and every error names its field path.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from rlfarm.agents.config import AlgoConfig, PolicyConfig
from rlfarm.cluster.config import FarmConfig, spread_over_slots
from rlfarm.envs import EnvConfig
from rlfarm.experiments.config_types import Ranges, StrictLoader, build, parse_yaml, plain, type_name
from rlfarm.experiments.errors import ConfigError


@dataclass
class StopConfig:
    """When a run ends: whichever limit comes first (a limit of 0 or null is off)."""

    env_steps: int = 1_000_000
    """Env steps consumed by the learner."""

    wall_s: float = 0.0
    """Seconds of training (the loop, not start-up)."""

    target_return: float | None = None
    """Stop once the mean return of the last `log.return_window` episodes reaches this."""

    continue_after_target: bool = False
    """Keep training after target_return is reached (until env_steps or wall_s), e.g. to see
    whether the policy stays solved; summary.json records solved_at_env_steps either way."""


@dataclass
class LogConfig:
    """Where a run writes, and how often it reports and checkpoints."""

    dir: str = "runs"
    """Parent folder of run dirs: <dir>/<name>-<YYYYmmdd-HHMMSS>/."""

    report_interval_s: float = 1.0
    """Seconds between TensorBoard points and progress updates."""

    checkpoint_interval_s: float = 300.0
    """Seconds between checkpoints (one is always written at the end); 0 writes only the last."""

    keep_checkpoints: int = 3
    """How many recent checkpoints to keep in checkpoints/."""

    return_window: int = 100
    """Episodes averaged for episode_return_mean and target_return."""

    progress: str = "auto"
    """auto (a bar on a terminal, plain lines otherwise) | bar | lines | none."""

    pictures: bool = True
    """At each checkpoint, replay copy 0's episode with its policy on the driver and write one
    picture of it to TensorBoard's Images tab (u(x, t) for KS; render() frames otherwise)."""

    checkpoint_replay: bool = False
    """SAC/DQN: save the replay buffer in every checkpoint (as large as the buffer's fill).
    Without it a resume starts with an empty buffer and refills it to algo.learning_starts
    before gradient steps resume, and the run says so."""


@dataclass
class ExperimentConfig:
    """One training run: every section of the YAML file."""

    name: str = "experiment"
    """Run name; the run dir is <log.dir>/<name>-<timestamp>."""

    seed: int = 0
    """Seeds the learner (torch) and every env copy's stream (runner, copy)."""

    env: EnvConfig = field(default_factory=EnvConfig)
    model: PolicyConfig = field(default_factory=PolicyConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    farm: FarmConfig = field(default_factory=FarmConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    log: LogConfig = field(default_factory=LogConfig)


PROGRESS_MODES = ("auto", "bar", "lines", "none")
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,100}")
"""A run name: it becomes a folder name, a SLURM job name and part of a Ray job id, so it
carries nothing that a path, a shell or an #SBATCH line would read."""

# Range checks for this module's own sections (env, model, algo and farm validate themselves).
_RANGES: Ranges = {
    "seed": (lambda v: v >= 0, "must be >= 0"),
    "name": (lambda v: bool(NAME_PATTERN.fullmatch(v)) and v not in (".", ".."),
             "must be 1-100 letters, digits, '-', '_' or '.' (not '.' or '..')"),
    "stop.env_steps": (lambda v: v >= 0, "must be >= 0 (0: no limit)"),
    "stop.wall_s": (lambda v: v >= 0, "must be >= 0 (0: no limit)"),
    "log.dir": (lambda v: bool(v), "must be a non-empty path"),
    "log.report_interval_s": (lambda v: v > 0, "must be > 0"),
    "log.checkpoint_interval_s": (lambda v: v >= 0, "must be >= 0 (0: only the final checkpoint)"),
    "log.keep_checkpoints": (lambda v: v >= 1, "must be >= 1"),
    "log.return_window": (lambda v: v >= 1, "must be >= 1"),
    "log.progress": (lambda v: v in PROGRESS_MODES, f"must be one of {', '.join(PROGRESS_MODES)}"),
}


def override_text(key: str, value: Any) -> str:
    """`key=value` for apply_overrides from a Python value (the API's override mappings):
    numpy scalars and arrays become plain numbers and lists (JSON is YAML)."""
    def plain(item: Any) -> Any:
        if hasattr(item, "item") and getattr(item, "shape", None) == ():
            return item.item()
        if hasattr(item, "tolist"):
            return item.tolist()
        raise ConfigError(f"{key}: cannot use a {type(item).__name__} value as a config value")

    return f"{key}={json.dumps(value, default=plain)}"


MAX_CONFIG_BYTES = 1 << 20
"""A config file larger than this (1 MiB) is refused before YAML reads it: configs are a few
KiB, and YAML takes minutes and gigabytes over a file of millions of list entries."""
MAX_OVERRIDE_CHARS = 1 << 16
"""The same bound for one `--set KEY=VALUE` (64 Ki characters; a list of widths is a few dozen)."""


def load_config(path: str | os.PathLike, overrides: typing.Sequence[str] = ()) -> ExperimentConfig:
    """Read the YAML file at `path`, apply `--set key=value` overrides, build and check."""
    path = os.fspath(path)
    check_config_size(path, overrides)
    try:
        with open(path, encoding="utf-8") as stream:
            raw = yaml.load(stream, Loader=StrictLoader)
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); "
                          "save the config as UTF-8") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a YAML config file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type_name(raw)}")
    raw.setdefault("name", name_from_path(path))
    return config_from_dict(apply_overrides(raw, overrides))


def name_from_path(path: str) -> str:
    """The default run name: the config file's name without .yaml, '_' -> '-', and any
    character a name may not hold (see NAME_PATTERN) replaced by '-'."""
    stem = os.path.splitext(os.path.basename(path))[0].replace("_", "-")
    name = re.sub(r"[^A-Za-z0-9._-]", "-", stem)[:100]
    return name if name.strip(".") else "experiment"


def config_from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Build an ExperimentConfig from plain data (as `yaml.safe_load` returns), or raise ConfigError."""
    cfg = build(ExperimentConfig, raw, "", _RANGES)
    _spread_runners(cfg)
    _check_cross_fields(cfg)
    return cfg


def _spread_runners(cfg: ExperimentConfig) -> None:
    """farm.runner_slots > 0: the config's copies and batch spread over the slots (a launcher
    filling an allocation adds throughput, not a larger batch). Idempotent, so a resolved
    config.yaml resolves to itself."""
    farm = cfg.farm
    farm.num_runners, cfg.env.envs_per_runner, farm.batch_size = spread_over_slots(
        farm.num_runners, cfg.env.envs_per_runner, farm.fragment_length, farm.batch_size, farm.runner_slots)


def check_config_size(path: str, overrides: typing.Sequence[str] = ()) -> None:
    """Refuse a config file over MAX_CONFIG_BYTES and any override over MAX_OVERRIDE_CHARS,
    before YAML reads either (every reader of a config file calls this first)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0  # a missing file or a folder: the caller's open() names it
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes, more than the {MAX_CONFIG_BYTES:,} bytes (1 MiB) a config may "
                          "have; configs are a few KiB")
    for item in overrides:
        check_override_length(item)


def check_override_length(item: str) -> None:
    """Refuse one `--set` longer than MAX_OVERRIDE_CHARS, naming its key, before YAML reads it."""
    if len(item) > MAX_OVERRIDE_CHARS:
        key = item.partition("=")[0].strip()[:100]
        raise ConfigError(f"--set {key}: {len(item):,} characters, more than the {MAX_OVERRIDE_CHARS:,} "
                          "an override may have")


def apply_overrides(raw: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """Apply `a.b=value` strings to the raw mapping; values are parsed as YAML (1e-3, true, [64, 64])."""
    for item in overrides:
        check_override_length(item)
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. --set algo.lr=1e-3")
        try:
            value = parse_yaml(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text  # not YAML: take it as a plain string
        parts = key.split(".")
        node = raw
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(parts[:depth + 1])}: is a {type_name(child)}, "
                                  f"so --set {key} cannot set a field inside it")
            node = child
        node[parts[-1]] = value
    return raw


def to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """Plain data for config.yaml; `load_config` of the dump gives back an equal config."""
    return plain(dataclasses.asdict(cfg))


def dump_config(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)


def display_config(cfg: ExperimentConfig) -> str:
    """The config for people (TensorBoard's Text tab): block style, one key a line, and only the
    algo keys that apply to cfg.algo.name (config.yaml keeps every key)."""
    data = to_dict(cfg)
    left_out = [key for key in data["algo"] if key in cfg.algo.unread_fields()]
    data["algo"] = {key: value for key, value in data["algo"].items() if key not in left_out}
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    note = f"# algo keys not used by {cfg.algo.name}, left out: {', '.join(left_out)}\n" if left_out else ""
    return note + text


def _check_cross_fields(cfg: ExperimentConfig) -> None:
    _check_env_id(cfg.env.id, cfg.env.imports)
    if cfg.algo.name == "appo" and cfg.farm.artificial_lag > cfg.farm.max_lag:
        raise ConfigError(f"farm.artificial_lag: {cfg.farm.artificial_lag} is above farm.max_lag "
                          f"({cfg.farm.max_lag}), so APPO would drop every fragment")
    if cfg.algo.name in ("sac", "dqn"):
        if cfg.farm.num_learners > 1:
            raise ConfigError(f"farm.num_learners: data-parallel {cfg.algo.name} is not built yet; use 1")
        if cfg.model.trunk != "mlp" or not cfg.model.numpy_acting:
            raise ConfigError(f"model.trunk: {cfg.algo.name} is built for mlp trunks acting in numpy "
                              f"(activation not gelu) only; got trunk {cfg.model.trunk}, activation {cfg.model.activation}")
    steps_per_fragment = cfg.farm.fragment_length * cfg.env.envs_per_runner
    if cfg.farm.batch_size and cfg.farm.batch_size % steps_per_fragment:
        raise ConfigError(f"farm.batch_size: {cfg.farm.batch_size} is not a multiple of one fragment "
                          f"(farm.fragment_length x env.envs_per_runner = {steps_per_fragment})")
    if cfg.algo.target_kl is not None and cfg.farm.num_learners > 1:
        raise ConfigError("algo.target_kl: the early stop is decided per learner, so data-parallel "
                          "learners (farm.num_learners > 1) would stop at different epochs; set it to null")
    if not (cfg.stop.env_steps or cfg.stop.wall_s or
            (cfg.stop.target_return is not None and not cfg.stop.continue_after_target)):
        raise ConfigError("stop: set at least one of env_steps, wall_s, target_return "
                          "(target_return ends a run only without continue_after_target)")


def _check_env_id(env_id: str, imports: list[str]) -> None:
    """Resolve the id as every runner will (envs.resolve): imports, entry points, registry."""
    import gymnasium

    from rlfarm import envs

    try:
        envs.resolve(env_id, imports)
        return
    except envs.EnvSpecError as err:
        message = str(err)
    if not message.startswith("env_id: unknown env "):
        raise ConfigError(message.replace("env_id: ", "env.id: ", 1))
    known = set(envs.registered_ids())
    near = difflib.get_close_matches(env_id, sorted(known | set(gymnasium.registry)), n=1, cutoff=0.6)
    hint = f"; did you mean '{near[0]}'?" if near else f"; rlfarm envs: {', '.join(sorted(known))}"
    raise ConfigError(f"env.id: unknown env id {env_id!r}{hint} (`rlfarm envs` lists them; "
                      "a user's env: 'package.module:Class', or list its module in env.imports)")


def name_field(message: str, cfg: ExperimentConfig) -> str:
    """Prefix a layer's "field: what is wrong" with its config section (env.kwargs, model, ...)."""
    head = message.split(":", 1)[0].strip()
    if head == cfg.env.id:  # envs.make: "<id>: unknown keyword(s) ..."
        return f"env.kwargs:{message.split(':', 1)[1]}"
    if head in (cfg.env.kwargs or {}):
        return f"env.kwargs.{message}"
    if (keyword := message.split("=", 1)[0].strip()) in (cfg.env.kwargs or {}):  # "dt=0.01 breaks ..."
        return f"env.kwargs.{keyword}: {message}"
    for section in ("model", "algo", "farm", "env"):
        if hasattr(getattr(cfg, section), head):
            return f"{section}.{message}"
    return f"{cfg.env.id}: {message}"
