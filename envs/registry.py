"""The `rlfarm/...` ids, their registration with gymnasium, and `envs.make`.

One way to name an env, used by every process that makes one (the driver's config check,
serial mode, each Ray runner, `rlfarm eval`, `rlfarm bench`): `resolve(env_id, imports)`
imports `env.imports`, reads the `rlfarm.envs` entry points of installed packages, then
looks `env_id` up as a registered id or as `"package.module:attr"`.
"""
from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from rlfarm.envs.base import BatchedEnv, parse_autoreset_mode
from rlfarm.envs.checks import check_int

NAMESPACE = "rlfarm"
ENTRY_POINT_GROUP = "rlfarm.envs"


@dataclass(frozen=True)
class EnvEntry:
    id: str
    """The gymnasium id, in the `rlfarm` namespace."""
    batched: str
    """`module:Class` of the numpy-batched VectorEnv."""
    single: str
    """`module:Class` of the single-env view that `gym.make(id)` returns."""
    description: str
    """One line for `rlfarm envs`."""


ENTRIES: dict[str, EnvEntry] = {e.id: e for e in [
    EnvEntry("rlfarm/CartPole-v1", "rlfarm.envs.cartpole:CartPoleBatched", "rlfarm.envs.cartpole:CartPoleEnv",
             "gymnasium's CartPole-v1 dynamics; 2 actions; 500-step episodes"),
    EnvEntry("rlfarm/Pendulum-v1", "rlfarm.envs.pendulum:PendulumBatched", "rlfarm.envs.pendulum:PendulumEnv",
             "gymnasium's Pendulum-v1; torque in [-2, 2]; 200-step episodes"),
    EnvEntry("rlfarm/HeatControl-v0", "rlfarm.envs.heat:HeatControlBatched", "rlfarm.envs.heat:HeatControlEnv",
             "2-D heat equation on an n x n plate, K heaters, track a random target field"),
    EnvEntry("rlfarm/KuramotoSivashinsky-v0", "rlfarm.envs.ks:KuramotoSivashinskyBatched",
             "rlfarm.envs.ks:KuramotoSivashinskyEnv",
             "1-D Kuramoto-Sivashinsky (L=22, ETDRK4), M actuators, minimize dissipation"),
    EnvEntry("rlfarm/CylinderJets-v0", "rlfarm.envs.cylinder:CylinderJetsBatched",
             "rlfarm.envs.cylinder:CylinderJetsEnv",
             "2-D cylinder wake at Re=100 (lattice Boltzmann), two jets, cut the drag"),
]}


def _load(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def available_ids() -> list[str]:
    """The rlfarm ids whose module exists in this checkout."""
    ids = []
    for entry in ENTRIES.values():
        try:
            _load(entry.batched)
        except (ImportError, AttributeError):
            continue
        ids.append(entry.id)
    return ids


def registered_ids() -> list[str]:
    """The `rlfarm/...` ids that `envs.make` and `gymnasium.make` accept."""
    return [env_id for env_id in ENTRIES if env_id in gym.registry]


SUBPROCESS_ID = "rlfarm/Subprocess-v0"
SUBPROCESS_TARGET = "rlfarm.envs.subprocess_env:SubprocessEnv"
"""An external program as a batched env (envs/subprocess_env.py); needs its kwargs, so it is
registered apart from ENTRIES, whose envs are built with defaults by `rlfarm envs`."""


def subprocess_class() -> type[BatchedEnv]:
    return _load(SUBPROCESS_TARGET)


def _view(target: str) -> functools.partial:
    """The vector_entry_point gymnasium gets: `gym.make_vec` returns a GymnasiumView (envs/interop.py)."""
    from rlfarm.envs.interop import gymnasium_vector

    return functools.partial(gymnasium_vector, target)


def register_all() -> None:
    """Register rlfarm's ids, the bridge and the installed `rlfarm.envs` entry points ("id =
    module:attr") with gymnasium, so `gym.make_vec(id, n)` finds them; rlfarm itself resolves
    them without the registry (`resolve`)."""
    if SUBPROCESS_ID not in gym.registry:
        gym.register(id=SUBPROCESS_ID, vector_entry_point=_view(SUBPROCESS_TARGET))
    for env_id in available_ids():
        if env_id not in gym.registry:
            entry = ENTRIES[env_id]
            gym.register(id=env_id, entry_point=entry.single, vector_entry_point=_view(entry.batched),
                         disable_env_checker=False)
    for env_id, target in _declared_entry_points().items():
        if env_id not in gym.registry:
            gym.register(id=env_id, vector_entry_point=_view(target))


def _declared_entry_points() -> dict[str, str]:
    """`rlfarm.envs` entry points of the "id = module:attr" form, read without importing them."""
    found: dict[str, str] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ":" in entry.value:
            found.setdefault(entry.name, entry.value)
    return found


def batched_class(env_id: str) -> type[BatchedEnv]:
    return _load(ENTRIES[env_id].batched)


def accepted_kwargs(target: Any) -> list[str]:
    """The keywords a user may pass to an env class or factory (rlfarm's own ones left out)."""
    signature = inspect.signature(target.__init__ if inspect.isclass(target) else target)
    return [name for name, p in signature.parameters.items()
            if name not in _RLFARM_KEYWORDS and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


_RLFARM_KEYWORDS = {"self", "num_envs", "autoreset_mode", "runner_index"}


# ---- one way to name an env -------------------------------------------------------------
class EnvSpecError(ValueError):
    """The env's id, imports or keywords are wrong: a config error, not a crash."""


@dataclass(frozen=True)
class EnvSource:
    """What an env id names, once resolved (see `resolve`)."""

    kind: str
    """"batched" (a BatchedEnv subclass), "vector" (a VectorEnv class or a factory that
    follows rlfarm's conventions), or "single" (a gymnasium Env, vectorized by gymnasium)."""
    target: Any
    """The class or factory; for "single", the gymnasium id or an EnvSpec."""
    label: str
    """The id as the user wrote it, for messages."""


def env_factory(function: Any) -> Any:
    """Mark `function(num_envs, **kwargs) -> VectorEnv` as an env factory, so that
    `env.id: "package.module:function"` may name it. Anything else that is not an env class
    is refused without being called (a typo must not run `os:system`)."""
    function.rlfarm_env_factory = True
    return function


def import_user_module(name: str, field: str) -> Any:
    """Import the user's module `name` (named by config field `field`). A missing module is an
    EnvSpecError; any other failure while it imports (an exception, a SyntaxError, a missing
    inner module, even `sys.exit`) is an EnvStartError with the short report (type, message,
    the user's file:line): never a traceback, never a silent exit."""
    from rlfarm.envs.failures import describe

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and (name == err.name or name.startswith(err.name + ".")):
            raise EnvSpecError(f"{field}: no module named {err.name!r} (is its package "
                               "installed, or its folder on PYTHONPATH, on every node?)") from err
        raise describe(err, f"importing {name!r} ({field}),") from err
    except SystemExit as err:  # a module must not end the process that imports it
        report = describe(err, f"importing {name!r} ({field}),")
        report.kind, report.message = "SystemExit", f"the module called sys.exit({err.code!r}) while it was imported"
        raise report from None
    except Exception as err:  # noqa: BLE001 - the user's code: reported, not a traceback
        raise describe(err, f"importing {name!r} ({field}),") from err


def import_modules(modules: list[str] | tuple[str, ...]) -> None:
    """Import `env.imports`, so their `gymnasium.register` calls take effect in this process."""
    for name in modules:
        import_user_module(name, "env.imports")


_entry_points: dict[str, str] | None = None


def entry_point_ids(refresh: bool = False) -> dict[str, str]:
    """Env ids declared by installed packages in the `rlfarm.envs` entry-point group.

    An entry point `"my/Reach-v0" = "mypkg.envs:Reach"` names an env like `env.id` does
    (loaded when the env is made); one whose value is a bare module is imported here, so
    that its own `gymnasium.register` calls run.
    """
    global _entry_points
    if _entry_points is None or refresh:
        found: dict[str, str] = {}
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ":" in entry.value:
                found.setdefault(entry.name, entry.value)
                continue
            try:
                importlib.import_module(entry.value)
            except Exception as err:  # noqa: BLE001 -- one broken package must not stop every run
                warnings.warn(f"rlfarm.envs entry point {entry.name!r}: importing {entry.value!r} "
                              f"failed ({type(err).__name__}: {err})", RuntimeWarning, stacklevel=2)
        _entry_points = found
    return dict(_entry_points)


def resolve(env_id: str, imports: list[str] | tuple[str, ...] = ()) -> EnvSource:
    """What `env_id` names: an entry-point id, a gymnasium id (rlfarm's, gymnasium's or the
    user's), or `"package.module:attr"`. `imports` are imported first."""
    import_modules(imports)
    declared = entry_point_ids()
    if env_id in declared:
        return _classify(_load_attr(declared[env_id], env_id), env_id, declared=True)
    if env_id in ENTRIES or env_id == SUBPROCESS_ID:  # the batched class itself, not gymnasium's view
        return _classify(_load(ENTRIES[env_id].batched if env_id in ENTRIES else SUBPROCESS_TARGET), env_id)
    if env_id in gym.registry:
        entry = gym.registry[env_id].vector_entry_point
        if entry is not None:
            source = _classify(_load_attr(entry, env_id) if isinstance(entry, str) else entry, env_id,
                               declared=True)
            if source.kind == "batched" or getattr(source.target, "rlfarm_conventions", False):
                return source
        return EnvSource("single", env_id, env_id)
    if ":" in env_id:
        module_name, attr = env_id.split(":", 1)
        module = _import_for_id(module_name, env_id)
        if hasattr(module, attr):
            return _classify(getattr(module, attr), env_id)
        if attr in gym.registry:  # gymnasium's own "module:Id" form
            return resolve(attr)
        raise EnvSpecError(f"env_id: module {module_name!r} has no attribute {attr!r} and registers no "
                           f"gymnasium id {attr!r}")
    raise EnvSpecError(f"env_id: unknown env {env_id!r}; rlfarm ids: {registered_ids()} "
                       "(or any id registered with gymnasium, e.g. 'Acrobot-v1', or 'package.module:Class')")


def _import_for_id(module_name: str, env_id: str) -> Any:
    return import_user_module(module_name, f"env_id: {env_id!r}")


def _load_attr(path: str, env_id: str) -> Any:
    module_name, _, attr = path.partition(":")
    module = _import_for_id(module_name, env_id)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise EnvSpecError(f"env_id: {env_id!r}: module {module_name!r} has no attribute {attr!r}") from None


def _classify(target: Any, env_id: str, declared: bool = False) -> EnvSource:
    """What kind of env `target` is. `declared`: named by a registration or an entry point,
    whose factories are envs by declaration; a factory named by a path must be marked
    (`env_factory`). Nothing is called here."""
    if inspect.isclass(target) and issubclass(target, BatchedEnv):
        return EnvSource("batched", target, env_id)
    if inspect.isclass(target) and issubclass(target, gym.vector.VectorEnv):
        return EnvSource("vector", target, env_id)
    if inspect.isclass(target) and issubclass(target, gym.Env):
        from gymnasium.envs.registration import EnvSpec

        return EnvSource("single", EnvSpec(id=target.__name__, entry_point=target), env_id)
    if callable(target) and not inspect.isclass(target) and (declared or getattr(target, "rlfarm_env_factory", False)):
        return EnvSource("vector", target, env_id)
    what = f"the class {target.__qualname__}" if inspect.isclass(target) else \
        f"a {type(target).__name__} ({getattr(target, '__qualname__', '')})" if callable(target) else \
        f"a {type(target).__name__}"
    raise EnvSpecError(f"env_id: {env_id!r} is {what}, not an env; expected a BatchedEnv subclass, a gymnasium "
                       "Env class, or a factory (num_envs, **kwargs) -> VectorEnv marked with "
                       "@rlfarm.envs.env_factory or declared in the rlfarm.envs entry-point group (it was not called)")


def _construct(source: EnvSource, num_envs: int, kwargs: dict[str, Any], **rlfarm_kwargs: Any) -> Any:
    """`source.target(num_envs, ...)` after checking the user's keywords against its signature."""
    target = source.target
    params = inspect.signature(target).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
    accepted = accepted_kwargs(target)
    unknown = [] if open_ended else sorted(set(kwargs) - set(accepted))
    if unknown:
        raise EnvSpecError(f"{source.label}: unknown keyword(s) {unknown}; accepted: {accepted}")
    passed = {k: v for k, v in rlfarm_kwargs.items() if open_ended or k in params}
    return target(num_envs, **passed, **kwargs)


def make(env_id: str, num_envs: int, *, seed=None, runner_index: int = 0,
         autoreset_mode: str = "next_step", vectorization: str = "sync",
         imports: list[str] | tuple[str, ...] = (), **kwargs) -> gym.vector.VectorEnv:
    """N copies of env `env_id` as one VectorEnv with rlfarm's conventions (docs/interfaces.md).

    `env_id` is resolved by `resolve` (after importing `imports`). A BatchedEnv subclass, or
    a VectorEnv class or factory that follows the conventions, is built directly; a plain
    gymnasium Env is vectorized by gymnasium (`vectorization`: "sync" or "async") behind
    `envs.adapters.ForeignVectorEnv`. `seed` seeds the first `reset()` that has no seed;
    copy i of runner r then draws from a stream derived from (seed, r, i). `kwargs` go to
    the env's constructor.
    """
    mode = parse_autoreset_mode(autoreset_mode)
    check_int("num_envs", num_envs, 1)
    source = resolve(env_id, imports)
    if source.kind == "single":
        from rlfarm.envs.adapters import ForeignVectorEnv
        try:
            env = ForeignVectorEnv(source.target, num_envs, autoreset_mode=mode, vectorization=vectorization,
                                   runner_index=runner_index, **kwargs)
        except TypeError as err:
            raise EnvSpecError(f"{env_id}: bad keyword arguments {sorted(kwargs)}: {err}") from err
    else:
        env = _construct(source, num_envs, kwargs, autoreset_mode=mode, runner_index=runner_index)
        _check_made(env, source, num_envs, mode)
    env.default_seed = seed
    return env


def _check_made(env: Any, source: EnvSource, num_envs: int, mode: Any) -> None:
    if not isinstance(env, gym.vector.VectorEnv):
        raise EnvSpecError(f"{source.label}: the factory returned a {type(env).__name__}, not a VectorEnv")
    if env.num_envs != num_envs:
        raise EnvSpecError(f"{source.label}: asked for {num_envs} copies, the env has num_envs={env.num_envs}")
    got = env.metadata.get("autoreset_mode")
    if got is not None and parse_autoreset_mode(got) is not mode:
        raise EnvSpecError(f"{source.label}: rlfarm asked for autoreset_mode={mode.value!r} but the env "
                           f"runs {got!r}; accept an autoreset_mode keyword (docs/interfaces.md)")
