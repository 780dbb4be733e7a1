"""Runner: one batched env plus a CPU copy of the policy; `sample()` returns one Fragment.

A plain class: the serial farm calls it directly, the Ray farm wraps it as an actor. The
hot loop is T iterations of (policy.act on N obs, env.step on N actions, row writes into
preallocated T x N arrays); nothing loops over env copies in Python. MLP policies act in
numpy (agents/numpy_acting.py), so such a runner never imports torch.
"""
from __future__ import annotations

import collections
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rlfarm.agents.config import AlgoConfig, PolicyConfig
    from rlfarm.envs.config import EnvConfig


class Runner:
    """Steps `env_cfg.envs_per_runner` copies of `env_cfg.id` with the latest published policy."""

    def __init__(self, env_cfg: EnvConfig, policy_cfg: PolicyConfig, *, seed: int | None, runner_index: int,
                 fragment_length: int, artificial_lag: int = 0,
                 algo_cfg: AlgoConfig | None = None, num_runners: int = 1) -> None:
        from rlfarm import agents, envs

        self.runner_index = int(runner_index)
        self.fragment_length = int(fragment_length)
        self.num_envs = int(env_cfg.envs_per_runner)
        try:  # the runner's own process resolves the id and imports env.imports itself
            self.env = envs.make(env_cfg.id, self.num_envs, seed=seed, runner_index=runner_index,
                                 autoreset_mode="same_step", imports=tuple(getattr(env_cfg, "imports", ())),
                                 vectorization=getattr(env_cfg, "vectorization", "sync"),
                                 **dict(env_cfg.kwargs or {}))
        except Exception as err:  # reported to the user by the driver (envs/failures.py)
            from rlfarm.envs.failures import describe

            raise describe(err, f"runner {runner_index}") from err
        self.spaces = (self.env.single_observation_space, self.env.single_action_space)
        # The policy's sampling stream is derived from (seed, runner), like the env copies' streams.
        policy_seed = None if seed is None else int(
            np.random.SeedSequence(int(seed), spawn_key=(int(runner_index), 1)).generate_state(1)[0])
        self.policy = agents.make_acting_policy(*self.spaces, policy_cfg, seed=policy_seed, algo_cfg=algo_cfg,
                                                runner_index=runner_index, num_runners=num_runners)
        self.keeps_final_obs = getattr(algo_cfg, "name", "ppo") in ("sac", "dqn")
        """Off-policy learners bootstrap a truncation from its final obs, which the fragment
        then carries (Fragment.final_obs); PPO's runners send only its value."""
        # artificial_lag k: act with the weights published k versions ago (tests V-trace).
        self._weights_history: collections.deque = collections.deque(maxlen=int(artificial_lag) + 1)
        self.env_errors = 0
        """Cumulative copies reset because their env raised or reported a bad state."""
        self._env_error_shown = False
        self._obs = np.asarray(self.env.reset()[0], dtype=np.float32)

    @property
    def version(self) -> int:
        """The policy version this runner acts with."""
        return int(self.policy.version)

    def set_weights(self, weights: dict) -> None:
        self._weights_history.append(weights)
        self.policy.set_weights(self._weights_history[0])

    def sample(self) -> Any:
        """Run `fragment_length` steps of every copy and return them as one Fragment."""
        from rlfarm import agents

        steps, num_envs, policy, env = self.fragment_length, self.num_envs, self.policy, self.env
        obs = np.empty((steps + 1, num_envs) + self._obs.shape[1:], np.float32)
        logp = np.empty((steps, num_envs), np.float32)
        values = np.empty((steps, num_envs), np.float32)
        rewards = np.empty((steps, num_envs), np.float32)
        terminated = np.empty((steps, num_envs), bool)
        truncated = np.empty((steps, num_envs), bool)
        final_values = np.zeros((steps, num_envs), np.float32)
        actions = None
        truncated_rows: list[tuple[int, np.ndarray, np.ndarray]] = []  # (t, copies, final obs)
        episode_returns: list[np.ndarray] = []
        episode_lengths: list[np.ndarray] = []
        env_errors_before = self.env_errors
        env_s = inference_s = 0.0
        obs[0] = self._obs
        for t in range(steps):
            tick = time.perf_counter()
            act, logp[t], values[t] = policy.act(obs[t])
            tock = time.perf_counter()
            inference_s += tock - tick
            if actions is None:
                actions = np.empty((steps,) + act.shape, act.dtype)
            actions[t] = act
            try:
                next_obs, rew, term, trunc, infos = env.step(policy.env_actions(act))
                obs[t + 1] = next_obs
                rewards[t] = rew
                bad = _non_finite_copies(obs[t + 1], rewards[t])
                if bad is not None:
                    raise NonFiniteEnvData(bad)
            except Exception as err:  # a foreign env that raises or returns NaN/Inf must not kill the run
                obs[t + 1] = self._recover(err)
                rewards[t], terminated[t], truncated[t] = 0.0, False, True
                final_values[t] = values[t]  # bootstrap from the last good value: advantage (gamma-1)*V, near 0
                env_s += time.perf_counter() - tock
                continue
            env_s += time.perf_counter() - tock
            terminated[t], truncated[t] = term, trunc
            self._count_env_errors(infos)
            ended = infos.get("_episode")
            if ended is not None and ended.any():
                episode_returns.append(infos["episode"]["r"][ended])
                episode_lengths.append(infos["episode"]["l"][ended])
            cut = trunc & ~term  # truncated, not terminated: bootstrap from V(final obs)
            if cut.any():
                copies = np.flatnonzero(cut)
                truncated_rows.append((t, copies, np.array(infos["final_obs"][copies], np.float32)))
        self._obs = obs[steps]
        final_obs = {}
        if truncated_rows and self.keeps_final_obs:
            finals = np.concatenate([row[2] for row in truncated_rows])
            index = np.concatenate([row[0] * num_envs + row[1] for row in truncated_rows])
            # A final obs with NaN/Inf is left out: the replay buffer then drops that transition.
            finite = np.isfinite(finals.reshape(len(finals), -1)).all(1)
            final_obs = {"final_obs": finals[finite], "final_index": index[finite].astype(np.int64)}
        elif self.keeps_final_obs:
            final_obs = {"final_obs": np.zeros((0,) + self._obs.shape[1:], np.float32),
                         "final_index": np.zeros(0, np.int64)}
        if truncated_rows and not self.keeps_final_obs:  # one value call for every truncation of the fragment
            tic = time.perf_counter()
            vals = policy.value(np.concatenate([row[2] for row in truncated_rows]))
            rows = np.concatenate([np.full(len(row[1]), row[0]) for row in truncated_rows])
            copies = np.concatenate([row[1] for row in truncated_rows])
            # A final obs with NaN/Inf (its copy ended, so the step's check did not see it)
            # bootstraps from the copy's last value instead.
            final_values[rows, copies] = np.where(np.isfinite(vals), vals, values[rows, copies])
            inference_s += time.perf_counter() - tic
        return agents.Fragment(
            obs=obs, actions=actions, logp=logp, values=values, rewards=rewards,
            terminated=terminated, truncated=truncated, final_values=final_values,
            policy_version=self.version, runner_id=self.runner_index,
            episode_returns=_concat(episode_returns, np.float32),
            episode_lengths=_concat(episode_lengths, np.int32),
            env_ms=1000.0 * env_s, inference_ms=1000.0 * inference_s,
            env_errors=self.env_errors - env_errors_before, **final_obs,
        )

    def _recover(self, err: Exception) -> np.ndarray:
        """Reset the whole batched env after `step` raised or returned NaN/Inf.

        A gymnasium VectorEnv resets all copies at once, so every copy's episode ends there
        (truncated, reward 0, never counted as an episode). An exception counts every copy
        as an env error; non-finite data counts the copies that produced it.
        """
        bad = err.copies if isinstance(err, NonFiniteEnvData) else self.num_envs
        self._report_env_error(_describe_error(err))
        self.env_errors += bad
        return np.asarray(self.env.reset()[0], dtype=np.float32)

    def _count_env_errors(self, infos: dict) -> None:
        """Count the copies the env itself reset after a bad state or an exception inside it."""
        errors = int(infos.get("env_errors", 0))
        if errors:
            self._report_env_error(infos.get("env_error_message") or "a copy reached a bad state")
            self.env_errors += errors

    def _report_env_error(self, message: str) -> None:
        """Show the first env error of this runner (type, message, env file:line); count the rest."""
        if not self._env_error_shown:
            self._env_error_shown = True
            print(f"rlfarm: runner {self.runner_index}: env error: {message}; the copies are reset and "
                  "counted in env_errors (shown once per runner)", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.env.close()


class NonFiniteEnvData(ArithmeticError):
    """An env step returned NaN or Inf in its observations or rewards."""

    def __init__(self, copies: int) -> None:
        super().__init__(f"{copies} copies returned NaN or Inf observations or rewards")
        self.copies = copies


def _non_finite_copies(obs_row: np.ndarray, reward_row: np.ndarray) -> int | None:
    """How many copies of one step's row (obs [N, ...], rewards [N], just written into the
    fragment) hold NaN or Inf, or None when all are finite.

    One float64 sum per copy over the row while it is still in cache: a NaN or Inf anywhere
    makes the copy's sum non-finite (float64 keeps large finite float32 values from
    overflowing). The data is not read a second time when all is finite, the common case.
    """
    sums = np.add.reduce(obs_row.reshape(len(reward_row), -1), axis=1, dtype=np.float64)
    sums += reward_row
    if np.isfinite(sums.sum()):
        return None
    return int(np.count_nonzero(~np.isfinite(sums)))


def _describe_error(err: Exception) -> str:
    """"Type: message (at file:line)" with the innermost frame of the env's traceback."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames and not isinstance(err, NonFiniteEnvData) else ""
    return f"{type(err).__name__}: {err}{where}"


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
