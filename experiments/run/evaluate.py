"""`rlfarm eval RUN_DIR [--episodes N] [--gif FILE] [--seed S]`.

Runs the deterministic policy of the run's newest checkpoint that loads (an unusable newer
one is named with its reason, and skipped) on N env copies at once, one
episode per copy (counting only each copy's first episode, so short episodes are not
over-represented), and prints the mean and std of the return.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from rlfarm.experiments.config import load_config
from rlfarm.experiments.errors import ConfigError, check_torch_threads

if TYPE_CHECKING:
    from rlfarm.experiments.config import ExperimentConfig

MAX_EVAL_STEPS = 1_000_000
"""Guard for envs without a time limit."""


def main(args: argparse.Namespace) -> int:
    from rlfarm.experiments.run.run_dirs import find_last_checkpoint, list_checkpoints

    run_dir = args.run_dir
    check_torch_threads()
    if args.episodes < 1:
        raise ConfigError(f"--episodes: must be >= 1, got {args.episodes}")
    if args.seed < 0:
        raise ConfigError(f"--seed: must be >= 0, got {args.seed}")
    config_path = os.path.join(run_dir, "config.yaml")
    if not os.path.isdir(run_dir) or not os.path.exists(config_path):
        raise ConfigError(f"RUN_DIR: {run_dir} is not a run dir (no config.yaml in it)")
    if args.gif and not os.path.isdir(os.path.dirname(os.path.abspath(args.gif))):
        raise ConfigError(f"--gif: no folder {os.path.dirname(os.path.abspath(args.gif))} to write {args.gif} in")
    checkpoint = find_last_checkpoint(run_dir)
    if checkpoint is None:
        raise ConfigError(f"RUN_DIR: no checkpoint in {os.path.join(run_dir, 'checkpoints')}")
    cfg = load_config(config_path)
    newest_first = list_checkpoints(run_dir)[::-1]
    result = evaluate(cfg, newest_first, episodes=args.episodes, seed=args.seed, gif=args.gif)
    print(f"rlfarm eval: return {result['return_mean']:.2f} +- {result['return_std']:.2f} over "
          f"{result['episodes']} episodes (length {result['length_mean']:.1f}; {result['checkpoint']})")
    if args.gif:
        print(f"rlfarm eval: wrote {args.gif} ({result['gif_frames']} frames)")
    print(json.dumps(result))
    return 0


def evaluate(cfg: ExperimentConfig, checkpoint: str | Sequence[str], *, episodes: int, seed: int = 12345,
             gif: str | None = None) -> dict[str, Any]:
    """Deterministic returns of `episodes` copies, one episode each. `checkpoint`: a path, or
    paths newest first, of which the first that loads is used (result["checkpoint"])."""
    from rlfarm import envs
    from rlfarm.cluster.learner import set_torch_threads

    set_torch_threads()
    kwargs = dict(cfg.env.kwargs or {})
    if gif:
        kwargs["render_mode"] = "rgb_array"
    try:
        env = envs.make(cfg.env.id, episodes, seed=seed, autoreset_mode="same_step",
                        vectorization=cfg.env.vectorization, imports=tuple(cfg.env.imports), **kwargs)
    except ValueError as err:
        raise ConfigError(f"--gif: {cfg.env.id} cannot render: {err}" if gif else f"env: {err}") from None
    policy, checkpoint, extra = load_policy(cfg, env, checkpoint, seed)

    returns = np.full(episodes, np.nan, np.float64)
    lengths = np.zeros(episodes, np.int64)
    frames: list[np.ndarray] = []
    obs, _ = env.reset()
    for _ in range(MAX_EVAL_STEPS):
        if gif and np.isnan(returns[0]):
            frame = env.render()
            if frame is None:
                raise ConfigError(f"--gif: {cfg.env.id} does not render frames")
            frames.append(np.asarray(frame[0] if isinstance(frame, (list, tuple)) else frame))
        actions, _, _ = policy.act(obs, deterministic=True)
        obs, _, _, _, infos = env.step(policy.env_actions(actions))
        ended = infos["_episode"] & np.isnan(returns)
        if ended.any():
            returns[ended] = infos["episode"]["r"][ended]
            lengths[ended] = infos["episode"]["l"][ended]
        if not np.isnan(returns).any():
            break
    env.close()
    done = ~np.isnan(returns)
    result = {
        "return_mean": float(np.mean(returns[done])) if done.any() else float("nan"),
        "return_std": float(np.std(returns[done])) if done.any() else float("nan"),
        "length_mean": float(np.mean(lengths[done])) if done.any() else float("nan"),
        "episodes": int(done.sum()),
        "checkpoint": checkpoint,
        "env_steps": int(extra.get("farm", {}).get("env_steps", 0)),
    }
    if gif:
        result["gif_frames"] = write_gif(gif, frames, fps=int(env.metadata.get("render_fps", 30)))
    return result


def load_policy(cfg: ExperimentConfig, env: Any, checkpoint: str | Sequence[str], seed: int) -> tuple[Any, str, dict]:
    """(acting policy, checkpoint used, its extra) from the first of `checkpoint` that loads."""
    from rlfarm import agents
    from rlfarm.cluster.learner import LearnerWorker
    from rlfarm.experiments.run.run_dirs import load_newest_valid

    obs_space, action_space = env.single_observation_space, env.single_action_space
    learner = LearnerWorker(obs_space, action_space, cfg.model, cfg.algo, device="cpu")
    candidates = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint)
    checkpoint, extra = load_newest_valid(candidates, learner.load_checkpoint, "RUN_DIR")
    if cfg.algo.name in ("sac", "dqn"):  # the squashed Gaussian's mode, or the greedy action
        policy = agents.make_acting_policy(obs_space, action_space, cfg.model, seed=seed, algo_cfg=cfg.algo)
    else:
        policy = agents.ActingPolicy(obs_space, action_space, cfg.model, seed=seed)
    policy.set_weights(learner.get_weights())
    return policy, checkpoint, extra


def write_gif(path: str, frames: list[np.ndarray], fps: int = 30) -> int:
    """Pillow ships with matplotlib, so no new dependency; imported only when a GIF is asked for."""
    from PIL import Image

    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    if not images:
        raise ConfigError("--gif: no frames were rendered")
    # The user's folder must exist: a typo in it must not create directories.
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(1, int(1000 / fps)), loop=0)
    return len(images)
