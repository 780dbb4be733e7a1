"""The conventions an env must follow to be farmed (docs/interfaces.md), as runnable checks.

`check(env_id, num_envs)` makes the env as a runner would (`envs.make`) and runs each check
in turn; `rlfarm envs check ID` prints them, and the test suite runs them on every built-in
env. A check returns nothing when the env passes and raises `ConventionError` saying what
it expected and what came.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlfarm.envs.base import parse_autoreset_mode
from rlfarm.envs.registry import make, resolve

ROLLOUT_STEPS = 40
MAX_STEPS_TO_AN_ENDING = 5000
"""How long `episode_info` waits for a first episode to end before it gives up."""


class ConventionError(AssertionError):
    """An env breaks a convention; the message says which, expected and got."""


@dataclass
class CheckResult:
    name: str
    ok: bool
    message: str = ""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ConventionError(message)


def _sample(env: Any, seed: int = 0) -> list[np.ndarray]:
    env.action_space.seed(seed)
    return [np.asarray(env.action_space.sample()) for _ in range(ROLLOUT_STEPS)]


# ---- the checks ---------------------------------------------------------------------------
def spaces_and_dtypes(maker: Callable[..., Any], num_envs: int) -> None:
    env = maker(num_envs)
    _expect(isinstance(env.single_observation_space, spaces.Box)
            and env.single_observation_space.dtype == np.float32,
            f"single_observation_space: expected a float32 Box, got {env.single_observation_space}")
    obs, infos = env.reset(seed=0)
    _expect(isinstance(infos, dict), f"reset: expected (obs, dict), got infos of type {type(infos).__name__}")
    shape = (num_envs,) + env.single_observation_space.shape
    for step, actions in enumerate([None] + _sample(env)[:5]):
        if actions is not None:
            obs, rewards, terminated, truncated, infos = env.step(actions)
            for name, value, dtype in (("rewards", rewards, np.float32), ("terminated", terminated, bool),
                                       ("truncated", truncated, bool)):
                _expect(isinstance(value, np.ndarray) and value.dtype == dtype and value.shape == (num_envs,),
                        f"step {step}: {name}: expected {np.dtype(dtype)} [{num_envs}], got "
                        f"{getattr(value, 'dtype', type(value).__name__)} {getattr(value, 'shape', '')}")
        _expect(isinstance(obs, np.ndarray) and obs.dtype == np.float32 and obs.shape == shape,
                f"step {step}: obs: expected float32 {shape}, got {getattr(obs, 'dtype', type(obs).__name__)} "
                f"{getattr(obs, 'shape', '')}")
    env.close()


def autoreset_modes(maker: Callable[..., Any], num_envs: int) -> None:
    for mode in ("next_step", "same_step"):
        env = maker(num_envs, autoreset_mode=mode)
        got = env.metadata.get("autoreset_mode")
        _expect(got is not None and parse_autoreset_mode(got) is parse_autoreset_mode(mode),
                f"autoreset_mode={mode!r}: the env's metadata['autoreset_mode'] is {got!r}")
        env.reset(seed=0)
        # Checked against the declared observation space, not the obs just returned: an obs of
        # the wrong width must be named as such (spaces_and_dtypes names the obs itself).
        expected = (num_envs, *env.single_observation_space.shape)
        for step, actions in enumerate(_sample(env)):
            *_, infos = env.step(actions)
            if mode == "same_step":
                final, mask = infos.get("final_obs"), infos.get("_final_obs")
                _expect(final is not None and mask is not None,
                        f"same_step: step {step}: infos['final_obs'] and infos['_final_obs'] must be there at "
                        f"every step, got keys {sorted(infos)}")
                _expect(isinstance(final, np.ndarray) and final.dtype == np.float32 and final.shape == expected,
                        f"same_step: step {step}: infos['final_obs']: expected float32 {expected} (the observation "
                        f"space, dense), got {_describe(final)}")
                _expect(isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (num_envs,),
                        f"same_step: step {step}: infos['_final_obs']: expected bool ({num_envs},), "
                        f"got {_describe(mask)}")
        env.close()


def _describe(value: Any) -> str:
    """'float32 (4, 3)' for an array, the type's name otherwise."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    return type(value).__name__


def seeding(maker: Callable[..., Any], num_envs: int) -> None:
    def rollout(seed: int, runner_index: int = 0) -> list[np.ndarray]:
        env = maker(num_envs, runner_index=runner_index)
        trace = [env.reset(seed=seed)[0]]
        for actions in _sample(env):
            obs, rewards, *_ = env.step(actions)
            trace += [obs, rewards]
        env.close()
        return trace

    first, again = rollout(7), rollout(7)
    _expect(all(np.array_equal(x, y) for x, y in zip(first, again)),
            "seeding: two envs reset with seed=7 and given the same actions diverged")
    _expect(not all(np.array_equal(x, y) for x, y in zip(first, rollout(8))),
            "seeding: seed=7 and seed=8 gave the same rollout (is the seed ignored?)")
    _expect(not np.array_equal(first[0], rollout(7, runner_index=1)[0]),
            "seeding: runner_index 0 and 1 started from the same observations with seed=7")


def episode_info(maker: Callable[..., Any], num_envs: int) -> None:
    env = maker(num_envs)
    env.reset(seed=0)
    env.action_space.seed(0)
    for step in range(MAX_STEPS_TO_AN_ENDING):
        _, _, terminated, truncated, infos = env.step(env.action_space.sample())
        episode, mask = infos.get("episode"), infos.get("_episode")
        _expect(isinstance(episode, dict) and np.asarray(episode.get("r")).dtype == np.float32
                and np.asarray(episode.get("l")).dtype == np.int32 and np.asarray(mask).dtype == bool
                and np.asarray(mask).shape == (num_envs,),
                f"step {step}: expected infos['episode'] = {{'r': float32, 'l': int32}} and infos['_episode'] "
                f"(bool [{num_envs}]) at every step, got keys {sorted(infos)}")
        done = np.asarray(terminated) | np.asarray(truncated)
        _expect(np.array_equal(np.asarray(mask), done), f"step {step}: infos['_episode'] differs from "
                                                         "terminated | truncated")
        if done.any():
            _expect(bool(np.all(np.asarray(episode["l"])[done] > 0)),
                    f"step {step}: an episode ended with infos['episode']['l'] = 0")
            env.close()
            return
    env.close()
    raise ConventionError(f"no episode ended in {MAX_STEPS_TO_AN_ENDING} random steps (is there a time limit?)")


def bad_actions(maker: Callable[..., Any], num_envs: int) -> None:
    env = maker(num_envs)
    env.reset(seed=0)
    space = env.single_action_space
    good = np.asarray(env.action_space.sample())
    bad = {"a batch of the wrong shape": np.concatenate([good, good[:1]])}
    if isinstance(space, spaces.Discrete):
        bad["an action out of range"] = np.full(num_envs, space.start + space.n, good.dtype)
    elif isinstance(space, spaces.Box):
        bad["NaN"] = np.full((num_envs,) + space.shape, np.nan, np.float32)
    for what, actions in bad.items():
        try:
            env.step(actions)
        except ValueError:
            continue
        except Exception as err:  # noqa: BLE001 -- reported as the wrong kind of failure
            raise ConventionError(f"step with {what}: expected ValueError, got {type(err).__name__}: {err}") from None
        raise ConventionError(f"step with {what}: expected ValueError, the env accepted it")
    env.close()


def single_env_view(env_id: str, imports: tuple[str, ...], kwargs: dict[str, Any]) -> str:
    """gymnasium's check_env on the single-env view, where the env has one."""
    from gymnasium.utils.env_checker import check_env

    source = resolve(env_id, imports)
    if source.kind == "batched":
        from rlfarm.envs.single import SingleEnvView

        view = type(f"{source.target.__name__}View", (SingleEnvView,), {"batched_cls": source.target})(**kwargs)
    elif env_id in gym.registry and gym.registry[env_id].entry_point is not None:
        view = gym.make(env_id, **kwargs).unwrapped
    else:
        return "skipped: no single-env view"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium's advice (infinite bounds, ...) is not a failure
        check_env(view, skip_render_check=True)
    return ""


CHECKS = {"spaces_and_dtypes": spaces_and_dtypes, "autoreset_modes": autoreset_modes,
          "seeding": seeding, "episode_info": episode_info, "bad_actions": bad_actions}


def check(env_id: str, num_envs: int = 4, imports: tuple[str, ...] = (),
          kwargs: dict[str, Any] | None = None) -> list[CheckResult]:
    """Run every check on `env_id`; an id that cannot be made raises envs.EnvSpecError."""
    kwargs = dict(kwargs or {})

    def maker(n: int, **overrides: Any) -> Any:
        return make(env_id, n, imports=imports, **{**kwargs, **overrides})

    maker(1).close()  # an unknown id or keyword is the caller's error, not a failed check
    results = []
    for name, run in CHECKS.items():
        results.append(_run(name, lambda run=run: run(maker, num_envs)))
    results.append(_run("check_env", lambda: single_env_view(env_id, imports, kwargs)))
    return results


def _run(name: str, body: Callable[[], Any]) -> CheckResult:
    try:
        note = body()
    except ConventionError as err:
        return CheckResult(name, False, str(err))
    except Exception as err:  # noqa: BLE001 -- an env that crashes fails the check
        return CheckResult(name, False, f"{type(err).__name__}: {err}")
    return CheckResult(name, True, note or "")
