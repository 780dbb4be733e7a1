"""rlfarm's Python API for experiment scripts: train, open runs, read curves, evaluate.

    import rlfarm
    cfg = rlfarm.load_config("experiments/configs/cartpole_ppo.yaml", {"seed": 3, "farm.mode": "serial"})
    run = rlfarm.train(cfg)                        # blocks, like `rlfarm train`
    steps, values = run.scalars("charts/episode_return_mean")
    result = rlfarm.evaluate(run, episodes=10)

`train` is the CLI's training loop called as a function: the same files, summary and exit
reasons. Errors are exceptions, not exit codes: a bad config raises `ConfigError` naming the
field, a crashed run raises `TrainingError` (its run dir still holds the summary and the last
checkpoint). Docs: docs/api.md.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rlfarm.experiments.config import ExperimentConfig, override_text
from rlfarm.experiments.config import load_config as _load_config_file
from rlfarm.experiments.errors import ConfigError

Callback = Callable[[dict[str, Any]], Any]
"""callback(metrics) -> None | bool | dict: True stops the run (exit_reason "callback"); a dict
of numbers is written to TensorBoard under custom/ (a dict with "stop": True does both)."""


class TrainingError(RuntimeError):
    """The run crashed. `run` is its Run: the summary names the error and the last checkpoint."""

    def __init__(self, message: str, run: "Run") -> None:
        super().__init__(message)
        self.run = run


def load_config(path: str | os.PathLike, overrides: Mapping[str, Any] | Sequence[str] | None = None
                ) -> ExperimentConfig:
    """Read a YAML config and apply overrides, checked like `rlfarm train --set`.

    overrides: {"algo.lr": 1e-3, "farm.mode": "serial"}, or ["algo.lr=1e-3", ...].
    Raises ConfigError naming the field.
    """
    if isinstance(overrides, Mapping):
        overrides = [override_text(key, value) for key, value in overrides.items()]
    return _load_config_file(path, list(overrides or ()))


def train(cfg: ExperimentConfig | str | os.PathLike | None, *, callbacks: Sequence[Callback] = (),
          run_dir: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
          hparams_keys: Sequence[str] = ()) -> "Run":
    """Train `cfg` to its stop condition in this process (Ray mode starts or joins Ray and
    shuts down what it started); returns the Run.

    run_dir: where to write (default: a new `<log.dir>/<name>-<time>`); resume: a run dir to
    continue from its last checkpoint (then `cfg` may be None: the run's config.yaml).
    KeyboardInterrupt stops after the current update, writes the checkpoint and summary, and
    is raised again, so a script stops too. A crash raises TrainingError. hparams_keys: config
    fields ("algo.clip_coef") that the run's HPARAMS row holds even at their default values
    (a sweep's swept fields); fields that differ from their defaults are always there.
    """
    from rlfarm.experiments.run.preflight import prepare_training

    started = time.perf_counter()
    trainer = prepare_training(cfg, resume=os.fspath(resume) if resume is not None else None,
                               run_dir=os.fspath(run_dir) if run_dir is not None and resume is None else None,
                               process_start_s=started, callbacks=callbacks, option="resume",
                               hparams_keys=hparams_keys)
    code = trainer.run()
    run_dir = trainer.run_dir  # the dir claimed: a suffix when another run took the name
    run = Run(run_dir)
    reason = run.summary.get("exit_reason")
    if reason == "interrupted":
        raise KeyboardInterrupt(f"run stopped; checkpoint and summary in {run_dir}")
    if code != 0 and reason != "sigterm":
        raise TrainingError(f"{run_dir}: {reason}: {run.summary.get('error')}", run)
    return run


class Run:
    """A run directory: its config, summary, TensorBoard curves, checkpoints and policy."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.dir = Path(run_dir)
        if not (self.dir / "config.yaml").is_file():
            raise ConfigError(f"run_dir: {self.dir} is not a run dir (no config.yaml in it)")

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    @property
    def config(self) -> ExperimentConfig:
        """The resolved config the run was trained with."""
        return _load_config_file(self.dir / "config.yaml")

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json as a dict ({} while the run has not written one yet)."""
        path = self.dir / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        from rlfarm.experiments.run.run_dirs import list_checkpoints

        return [Path(path) for path in list_checkpoints(str(self.dir))]

    def scalars(self, tag: str) -> tuple[np.ndarray, np.ndarray]:
        """(env steps int64 [K], values float64 [K]) of one TensorBoard tag, in step order."""
        from rlfarm.experiments.report.monitor import read_scalars

        points = read_scalars(str(self.dir), [tag]).get(tag)
        if points is None:
            raise KeyError(f"{tag}: no such scalar in {self.dir}")
        points = sorted(points)
        return (np.array([step for step, _ in points], np.int64),
                np.array([value for _, value in points], np.float64))

    def policy(self, checkpoint: str | os.PathLike | None = None) -> "Policy":
        """The acting policy of the last checkpoint (or `checkpoint`), as the runners use it."""
        return Policy(self, checkpoint)


class Policy:
    """A checkpoint's policy for inference: numpy or torch per `model.acting_backend`."""

    def __init__(self, run: Run, checkpoint: str | os.PathLike | None = None) -> None:
        from rlfarm import agents, envs
        from rlfarm.cluster.learner import LearnerWorker

        cfg = run.config
        if checkpoint is None:
            if not run.checkpoints:
                raise ConfigError(f"run_dir: no checkpoint in {run.dir / 'checkpoints'}")
            checkpoint = run.checkpoints[-1]
        self.checkpoint = Path(checkpoint)
        probe = envs.make(cfg.env.id, 1, **(cfg.env.kwargs or {}))
        self.observation_space, self.action_space = probe.single_observation_space, probe.single_action_space
        probe.close()
        learner = LearnerWorker(self.observation_space, self.action_space, cfg.model, cfg.algo, device="cpu")
        try:
            learner.load_checkpoint(str(self.checkpoint))
        except agents.CheckpointError as err:
            raise ConfigError(f"checkpoint: {self.checkpoint}: {err}") from None
        self._acting = agents.make_acting_policy(self.observation_space, self.action_space, cfg.model, seed=cfg.seed,
                                                 algo_cfg=cfg.algo)
        self._acting.set_weights(learner.get_weights())

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Env actions for a batch of raw observations obs [N, *obs_shape] -> actions [N, ...],
        ready for `env.step` (the normalizer is applied inside)."""
        actions, _, _ = self._acting.act(np.asarray(obs, np.float32), deterministic=deterministic)
        return self._acting.env_actions(actions)


def _int_argument(name: str, value: Any, minimum: int) -> int:
    """An integer argument of the API (numpy's integers too), or a ConfigError naming it."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {type(value).__name__} {value!r}")
    return int(value)


def evaluate(run: Run | str | os.PathLike, *, episodes: int = 10, seed: int = 12345,
             checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """Deterministic returns over `episodes` copies, one episode each, as `rlfarm eval --json`:
    {"return_mean", "return_std", "length_mean", "episodes", "checkpoint", "env_steps"}."""
    from rlfarm.experiments.run.evaluate import evaluate as evaluate_checkpoint

    run = run if isinstance(run, Run) else Run(run)
    episodes, seed = _int_argument("episodes", episodes, 1), _int_argument("seed", seed, 0)
    if checkpoint is None:
        if not run.checkpoints:
            raise ConfigError(f"run_dir: no checkpoint in {run.dir / 'checkpoints'}")
        checkpoint = run.checkpoints[-1]
    return evaluate_checkpoint(run.config, str(checkpoint), episodes=episodes, seed=seed)
