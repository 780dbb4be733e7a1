"""SerialFarm: the whole pipeline in one process, no Ray (Sample Factory's serial mode).

It drives the same Runner and LearnerWorker classes that the Ray farm runs as actors, so it
is the debugger and the reference the Ray path must match.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlfarm.agents.fragment import FragmentMeta
from rlfarm.cluster.config import FarmConfig
from rlfarm.cluster.farm_base import Farm, Stopwatch
from rlfarm.cluster.learner import LearnerWorker
from rlfarm.cluster.runner import Runner

if TYPE_CHECKING:
    from rlfarm.agents.config import AlgoConfig, PolicyConfig
    from rlfarm.envs.config import EnvConfig


class SerialFarm(Farm):
    """num_runners Runners sampled round-robin, one LearnerWorker, all in this process."""

    def __init__(self, env_cfg: EnvConfig, policy_cfg: PolicyConfig, algo_cfg: AlgoConfig, farm_cfg: FarmConfig,
                 seed: int, total_env_steps: int | None) -> None:
        super().__init__(env_cfg, policy_cfg, algo_cfg, farm_cfg, seed, total_env_steps)
        self.runners = [
            Runner(env_cfg, policy_cfg, seed=seed, runner_index=index,
                   fragment_length=farm_cfg.fragment_length, artificial_lag=farm_cfg.artificial_lag,
                   algo_cfg=algo_cfg, num_runners=farm_cfg.num_runners)
            for index in range(farm_cfg.num_runners)
        ]
        obs_space, action_space = self.runners[0].spaces
        self.learner = LearnerWorker(obs_space, action_space, policy_cfg, algo_cfg,
                                     total_env_steps=total_env_steps, seed=seed)
        self._next_runner = 0
        self.updating = False
        """True while the learner updates: `rlfarm train` interrupts a hung env step for a
        stop that is due, but lets an update finish (a half-done one is never checkpointed)."""
        self._publish_weights()

    def iterate(self) -> dict[str, Any]:
        sampling, updating = Stopwatch(), Stopwatch()
        fragments: list[Any] = []
        gathered = 0
        while gathered < self.batch_env_steps:
            runner = self.runners[self._next_runner]
            self._next_runner = (self._next_runner + 1) % len(self.runners)
            with sampling:
                fragment = runner.sample()
            if self.is_stale(fragment.policy_version, self.learner.version):
                self.dropped_fragments += 1
                runner.set_weights(self.learner.get_weights())  # catch up, or it stays stale
                continue
            fragments.append(fragment)
            gathered += self.steps_per_fragment
        with updating:
            self.updating = True
            try:
                metrics = self.learner.update(fragments)
                self._publish_weights()
            finally:
                self.updating = False
        return self.iteration_result([FragmentMeta.of(f) for f in fragments], metrics,
                                     sampling.seconds, updating.seconds)

    def _publish_weights(self) -> None:
        weights = self.learner.get_weights()
        for runner in self.runners:
            runner.set_weights(weights)

    def acting_weights(self) -> dict[str, Any]:
        return self.learner.get_weights()

    def _save_learner(self, path: str, extra: dict[str, Any], with_replay: bool = False) -> None:
        self.learner.save_checkpoint(path, extra, with_replay)

    def _load_learner(self, path: str) -> dict[str, Any]:
        return self.learner.load_checkpoint(path)

    def close(self) -> None:
        for runner in self.runners:
            runner.close()
        self.runners = []
