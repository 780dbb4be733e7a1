"""LearnerWorker: the learner as a plain class, so the serial farm calls it directly and the
Ray farm wraps it as an actor (on a GPU node when learner_resources ask for one)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from rlfarm.agents.config import AlgoConfig, PolicyConfig

TORCH_THREADS_ENV_VAR = "RLFARM_TORCH_THREADS"
"""Threads torch may use in a learner, `rlfarm eval` or a serial-mode driver (default 1)."""


def torch_threads() -> int:
    """$RLFARM_TORCH_THREADS as an int >= 1 (1 when unset), or ValueError naming the variable.

    One thread by default: the learner shares the machine with runner processes, and extra
    torch threads compete with them for the same cores."""
    text = os.environ.get(TORCH_THREADS_ENV_VAR, "").strip() or "1"
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{TORCH_THREADS_ENV_VAR}: expected an integer >= 1, got {text!r}")
    return threads


def set_torch_threads() -> None:
    """Give torch the threads that $RLFARM_TORCH_THREADS asks for."""
    import torch

    torch.set_num_threads(torch_threads())


class LearnerWorker:
    """Owns an agents learner (PPO or APPO): updates, weights for runners, checkpoints."""

    def __init__(self, obs_space: Any, action_space: Any, policy_cfg: PolicyConfig, algo_cfg: AlgoConfig, *,
                 total_env_steps: int | None = None, device: str | None = None,
                 seed: int | None = None) -> None:
        from rlfarm import agents

        set_torch_threads()
        # seed: the initial weights and the minibatch order follow the run's seed
        self.learner = agents.make_learner(
            obs_space, action_space, policy_cfg, algo_cfg, total_env_steps=total_env_steps,
            device=device or getattr(algo_cfg, "device", "auto"), seed=seed)

    @property
    def version(self) -> int:
        return int(self.learner.version)

    def update(self, fragments: Sequence[Any]) -> dict[str, float]:
        return self.learner.update(list(fragments))

    def get_weights(self) -> dict:
        return self.learner.get_weights()

    def state_dict(self) -> dict:
        return self.learner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state)

    def save_checkpoint(self, path: str, extra: dict[str, Any] | None = None, with_replay: bool = False) -> str:
        """One file (agents.save_checkpoint writes it atomically: a crash never leaves half);
        `with_replay`: an off-policy learner's replay buffer goes in too (log.checkpoint_replay)."""
        from rlfarm import agents

        if hasattr(self.learner, "save_replay"):
            self.learner.save_replay = bool(with_replay)
        return str(agents.save_checkpoint(str(path), self.learner, dict(extra or {})))

    def load_checkpoint(self, path: str) -> dict[str, Any]:
        """Restore the learner; returns the checkpoint's `extra`. Raises agents.CheckpointError."""
        from rlfarm import agents

        return agents.load_checkpoint(str(path), self.learner)
