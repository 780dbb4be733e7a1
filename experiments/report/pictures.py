"""Pictures of the physics for TensorBoard's Images tab, rendered off the hot path.

At each checkpoint the driver replays one episode of copy 0 (a single env copy, the
checkpoint's deterministic policy, at most PICTURE_STEPS steps) and turns it into one image:

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


def episode_picture(cfg: ExperimentConfig, checkpoint: str, seed: int = 0) -> np.ndarray | None:
    """One image of copy 0's episode under the checkpoint's policy, or None when the env has
    neither a field `u` nor frames from render()."""
    from rlfarm import envs
    from rlfarm.experiments.run.evaluate import load_policy

    env = envs.make(cfg.env.id, 1, seed=seed, autoreset_mode="same_step",
                    **{**(cfg.env.kwargs or {}), "render_mode": "rgb_array"})
    try:
        policy, _, _ = load_policy(cfg, env, checkpoint, seed)
        fields, frames = [], []
        obs, _ = env.reset()
        for _ in range(PICTURE_STEPS):
            field = getattr(env.unwrapped, "u", None)
            if isinstance(field, np.ndarray) and field.ndim == 2:
                fields.append(np.array(field[0], dtype=np.float64))
            else:
                frame = env.render()
                if frame is None:
                    return None
                frames.append(np.asarray(frame[0] if isinstance(frame, (list, tuple)) else frame))
            actions, _, _ = policy.act(obs, deterministic=True)
            obs, _, _, _, infos = env.step(policy.env_actions(actions))
            if infos["_episode"][0]:
                break
    finally:
        env.close()
    if fields:
        return space_time_image(np.stack(fields))
    return film_strip([frames[0], frames[len(frames) // 2], frames[-1]]) if frames else None


def write_picture(cfg: ExperimentConfig, checkpoint: str, writer: Any, step: int) -> bool:
    """Add the picture of `checkpoint`'s episode to TensorBoard (`physics/episode`); False when
    it failed, said once in the terminal: a picture never stops a run."""
    from rlfarm.experiments.report.console import say

    try:
        image = episode_picture(cfg, checkpoint, seed=cfg.seed)
    except Exception as err:  # noqa: BLE001 - a picture is never worth a crash
        say(f"rlfarm train: no pictures for this run ({type(err).__name__}: {err})")
        return False
    if image is not None:
        writer.add_image("physics/episode", image, step)
    return True
