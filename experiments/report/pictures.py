"""Pictures of the physics for TensorBoard's Images tab, rendered off the hot path.

At each checkpoint the driver replays one episode of copy 0 (a single env copy, the
policy the runners act with, deterministic, at most PICTURE_STEPS steps; the numpy acting copy,
so a Ray-mode driver imports no torch for it) and turns it into one image:

- an env whose state is a 1-D field `u` (KS): the space-time image u(x, t), x across, t down;
- any other env with `render()`: its last frame (HeatControl: temperature beside target),
  beside frames from the episode's start and middle.

The runners never render; the replay costs the driver one short episode per checkpoint.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rlfarm.experiments.config import ExperimentConfig

PICTURE_STEPS = 400
"""Longest replayed episode, in env steps."""


def space_time_image(field: np.ndarray, scale: int = 3) -> np.ndarray:
    """uint8 [t * scale, x * scale, 3] of a field [t, x]: blue (low) through white to red (high),
    symmetric about 0 so that the sign of u reads at a glance."""
    limit = float(np.max(np.abs(field))) or 1.0
    level = np.clip(field / limit, -1.0, 1.0)
    red = np.where(level > 0, 1.0, 1.0 + level)
    blue = np.where(level < 0, 1.0, 1.0 - level)
    green = 1.0 - np.abs(level)
    image = (255 * np.stack([red, green, blue], axis=-1)).astype(np.uint8)
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def film_strip(frames: list[np.ndarray]) -> np.ndarray:
    """Frames of one height side by side with a white gap."""
    height = min(frame.shape[0] for frame in frames)
    gap = np.full((height, 8, 3), 255, np.uint8)
    parts = [part for frame in frames for part in (frame[:height, :, :3].astype(np.uint8), gap)]
    return np.concatenate(parts[:-1], axis=1)


def episode_picture(cfg: ExperimentConfig, weights: dict[str, Any], seed: int = 0) -> np.ndarray | None:
    """One image of copy 0's episode under `weights` (a learner's `get_weights()` dict) acting
    deterministically, or None when the env has neither a field `u` nor frames from render().

    Frames are the costly part (a canvas each), and a film strip keeps three: the episode is
    played once without drawing, recording its actions, then replayed from the same seed
    with those actions, drawing only the middle and last frames. The env's physics is a
    function of its seed and the actions, so the replay passes through the same states.
    """
    from rlfarm.agents import make_acting_policy

    env = _picture_env(cfg, seed)
    try:
        policy = make_acting_policy(env.single_observation_space, env.single_action_space, cfg.model, seed=seed,
                                    algo_cfg=cfg.algo)
        policy.set_weights(weights)
        fields, frames, actions = [], [], []
        obs, _ = env.reset()
        for _ in range(PICTURE_STEPS):
            field = getattr(env.unwrapped, "u", None)
            if isinstance(field, np.ndarray) and field.ndim == 2:
                fields.append(np.array(field[0], dtype=np.float64))
            elif not frames:
                frame = _frame(env)
                if frame is None:
                    return None
                frames.append(frame)
            chosen, _, _ = policy.act(obs, deterministic=True)
            actions.append(policy.env_actions(chosen))
            obs, _, _, _, infos = env.step(actions[-1])
            if infos["_episode"][0]:
                break
    finally:
        env.close()
    if fields:
        return space_time_image(np.stack(fields))
    return film_strip(frames + _replayed_frames(cfg, seed, actions, (len(actions) // 2, len(actions) - 1)))


def _picture_env(cfg: ExperimentConfig, seed: int) -> Any:
    from rlfarm import envs

    return envs.make(cfg.env.id, 1, seed=seed, autoreset_mode="same_step",
                     **{**(cfg.env.kwargs or {}), "render_mode": "rgb_array"})


def _frame(env: Any) -> np.ndarray | None:
    frame = env.render()
    if frame is None:
        return None
    return np.asarray(frame[0] if isinstance(frame, (list, tuple)) else frame)


def _replayed_frames(cfg: ExperimentConfig, seed: int, actions: list[np.ndarray], wanted: tuple[int, ...]) -> list[np.ndarray]:
    """The frames before actions[i] for each i in `wanted`, replaying `actions` from the seed."""
    env = _picture_env(cfg, seed)
    try:
        env.reset()
        frames = []
        for index, action in enumerate(actions):
            if index in wanted:
                frames.extend([_frame(env)] * wanted.count(index))
            if index == max(wanted):
                break
            env.step(action)
    finally:
        env.close()
    return [frame for frame in frames if frame is not None]


def write_picture(cfg: ExperimentConfig, weights: dict[str, Any], writer: Any, step: int) -> bool:
    """Add the picture of the policy's episode to TensorBoard (`physics/episode`); False when
    it failed, said once in the terminal: a picture never stops a run."""
    from rlfarm.experiments.report.console import say

    try:
        image = episode_picture(cfg, weights, seed=cfg.seed)
    except Exception as err:  # noqa: BLE001 - a picture is never worth a crash
        say(f"rlfarm train: no pictures for this run ({type(err).__name__}: {err})")
        return False
    if image is not None:
        writer.add_image("physics/episode", image, step)
    return True


def checkpoint_picture(cfg: ExperimentConfig, farm: Any, checkpoint: str, spaces: tuple[Any, Any],
                       writer: Any, step: int) -> bool:
    """The physics picture of the policy just checkpointed: the weights the runners act with
    (the same version; no torch import in a Ray-mode driver), or, where the farm keeps none,
    the checkpoint's, loaded on the CPU. False when no picture could be made (said once)."""
    from rlfarm.experiments.report.console import say

    try:
        weights = farm.acting_weights()
        if weights is None:
            from rlfarm.cluster.learner import LearnerWorker

            learner = LearnerWorker(*spaces, cfg.model, cfg.algo, device="cpu")
            learner.load_checkpoint(checkpoint)
            weights = learner.get_weights()
    except Exception as err:  # noqa: BLE001 - a picture is never worth a crash
        say(f"rlfarm train: no pictures for this run ({type(err).__name__}: {err})")
        return False
    return write_picture(cfg, weights, writer, step)
