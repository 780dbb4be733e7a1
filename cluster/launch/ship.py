"""What of the user's own code travels to a Ray cluster with a run (Ray's runtime_env).

`rlfarm submit` and `rlfarm train --address` ship, as Ray `py_modules`:

- the top-level package (or single-file module) of `env.id`'s module path ("mypkg.envs:Reach"
  ships `mypkg`), when it is found as local source;
- the same for each module in `env.imports`;
- every path in `farm.py_modules` and `--py-module PATH` (a package folder or a .py file).

and, as the runners' working dir, the files and folders that a bridge `command`
(`rlfarm/Subprocess-v0`) names by a relative path inside the user's project (the folder
rlfarm runs from): `["mpirun", "-n", "2", "./heat_mpi"]` ships `heat_mpi`, at the same
relative path, so the command runs unchanged on every node.

Installed distributions (site-packages, or a name that `importlib.metadata` maps to a
distribution) are not shipped: they must be installed on every node, as rlfarm itself is
for `train --address`. Nothing here imports the user's code: module files are found with
`importlib.util.find_spec` on the top-level name only.

Size: Ray keeps each package in its GCS, whose gRPC messages stop at 512 MiB; rlfarm stops
well before, at SHIP_MAX_BYTES for everything together, with one line naming the largest part.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

SHIP_MAX_BYTES = 100 * 2**20
"""Everything shipped together (unzipped); data sets belong on a shared filesystem."""
_SKIP_DIRS = {"__pycache__", ".git", ".venv", "runs", "build", "dist", "node_modules", ".pytest_cache"}
_INSTALLED_DIRS = tuple({os.path.abspath(sysconfig.get_paths()[name]) + os.sep
                         for name in ("stdlib", "platstdlib", "purelib", "platlib")})
BRIDGE_ID = "rlfarm/Subprocess-v0"


class ShipError(ValueError):
    """The code to ship cannot be shipped (missing, or over the size limit); one line."""


@dataclass
class Shipment:
    py_modules: list[str] = field(default_factory=list)
    """Absolute paths of package folders and .py files, each shipped as a Ray py_module."""
    files: list[str] = field(default_factory=list)
    """Paths relative to `root` that the bridge command names: the runners' working dir."""
    installed: list[str] = field(default_factory=list)
    """Modules the config needs that are installed distributions: not shipped."""
    root: str = ""
    """The user's project folder (the folder `files` are relative to)."""
    bytes: int = 0

    def line(self) -> str:
        """One line for the terminal: what goes, how big, what must be installed instead."""
        parts = [Path(p).name for p in self.py_modules] + [f"./{f}" for f in self.files]
        text = (f"shipping {', '.join(parts)} ({self.bytes / 2**20:.1f} MiB)" if parts
                else "shipping no user code")
        if self.installed:
            text += f"; installed, not shipped: {', '.join(self.installed)}"
        return text

    def record(self) -> dict:
        """For summary.json."""
        return {"py_modules": list(self.py_modules), "files": list(self.files), "root": self.root,
                "installed": list(self.installed), "bytes": self.bytes}

    def runtime_env(self, staging: Path) -> dict:
        """Ray's runtime_env: py_modules, and a working dir of the command files staged
        under `staging` (which must live until Ray has uploaded it: `ray.init` or submit)."""
        env: dict = {}
        if self.py_modules:
            env["py_modules"] = list(self.py_modules)
        if self.files:
            env["working_dir"] = str(stage_files(self.files, Path(self.root), staging / "files"))
        return env


def _top_level(module: str) -> str:
    return module.split(":", 1)[0].split(".", 1)[0]


def _is_installed(top: str, path: str) -> bool:
    if os.path.abspath(path).startswith(_INSTALLED_DIRS) or "-packages" + os.sep in path:
        return True
    try:
        return top in importlib.metadata.packages_distributions()
    except Exception:  # a broken distribution's metadata must not stop the run
        return False


def module_source(top: str) -> str | None:
    """The folder of package `top`, or the file of module `top`, or None when not found."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:  # a package (or a namespace package: its first folder)
        locations = list(spec.submodule_search_locations)
        if spec.origin and spec.origin not in ("namespace", None) and os.path.isfile(spec.origin):
            return os.path.dirname(os.path.abspath(spec.origin))
        return os.path.abspath(locations[0]) if locations else None
    if spec.origin and os.path.isfile(spec.origin) and spec.origin.endswith(".py"):
        return os.path.abspath(spec.origin)
    return None  # built-in, frozen or an extension module: nothing to ship as source


def needed_modules(env_id: str, imports: list[str]) -> list[str]:
    """Top-level module names the env needs, in order: env.id's module, then env.imports."""
    names = []
    if ":" in env_id:
        names.append(_top_level(env_id))
    names += [_top_level(m) for m in imports]
    return list(dict.fromkeys(n for n in names if n and n != "rlfarm"))


def command_files(command: list[str], root: Path) -> list[str]:
    """The command's arguments that name an existing file or folder inside `root`, relative."""
    found = []
    for arg in command:
        if not isinstance(arg, str) or arg.startswith("-") or "{python}" in arg or not arg:
            continue
        path = (root / arg).resolve() if not os.path.isabs(arg) else Path(arg).resolve()
        try:
            relative = path.relative_to(root.resolve())
        except ValueError:
            continue  # outside the project (an installed launcher, /usr/bin/mpirun): not ours
        if str(relative) != "." and path.exists():
            found.append(relative.as_posix())
    return list(dict.fromkeys(found))


def tree_bytes(path: str | Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files
                     if os.path.isfile(os.path.join(folder, f)))
    return total


def plan_shipment(env_id: str, imports: list[str], env_kwargs: dict, extra: list[str] = (),
                  root: str | None = None, max_bytes: int = SHIP_MAX_BYTES) -> Shipment:
    """What to ship for this env (see the module docstring). Raises ShipError, one line."""
    root_path = Path(root or os.getcwd()).resolve()
    plan = Shipment(root=str(root_path))
    for top in needed_modules(env_id, imports):
        source = module_source(top)
        if source is None:
            continue  # not importable here either: the driver's own env check says so
        if _is_installed(top, source):
            plan.installed.append(top)
        elif source not in plan.py_modules:
            plan.py_modules.append(source)
    for item in extra:
        path = Path(item).expanduser()
        path = (root_path / path if not path.is_absolute() else path).resolve()
        if not path.exists():
            raise ShipError(f"py_modules: {item!r} does not exist (a package folder or a .py file)")
        if not (path.is_dir() or path.suffix == ".py"):
            raise ShipError(f"py_modules: {item!r} is neither a folder nor a .py file")
        if str(path) not in plan.py_modules:
            plan.py_modules.append(str(path))
    command = env_kwargs.get("command") if env_id == BRIDGE_ID else None
    if isinstance(command, (list, tuple)):
        plan.files = command_files(list(command), root_path)
    sizes = {Path(p).name: tree_bytes(p) for p in plan.py_modules}
    sizes.update({f"./{f}": tree_bytes(root_path / f) for f in plan.files})
    plan.bytes = sum(sizes.values())
    if plan.bytes > max_bytes:
        largest = max(sizes, key=sizes.get)
        raise ShipError(f"py_modules: the code to ship is {plan.bytes / 2**20:.0f} MiB ({largest}: "
                        f"{sizes[largest] / 2**20:.0f} MiB), over rlfarm's {max_bytes / 2**20:.0f} MiB limit; "
                        "put data on a shared filesystem, or install the package on every node")
    return plan


def stage_files(files: list[str], root: Path, dest: Path) -> Path:
    """Copy `files` (relative to `root`) to `dest` at the same relative paths; returns dest."""
    dest.mkdir(parents=True, exist_ok=True)
    skip = shutil.ignore_patterns(*_SKIP_DIRS, "*.pyc")
    for relative in files:
        source, target = root / relative, dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=skip, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    return dest


SHIPPED_ENV_VAR = "RLFARM_SHIPPED"
"""Set in a submitted job's environment to the submit's Shipment.record() as JSON: the job's
runtime_env already carries the user's code, so `rlfarm train` inside the job ships nothing
again and records what the submit shipped."""


def already_shipped() -> dict | None:
    """The record of what `rlfarm submit` shipped, inside a submitted job; else None."""
    import json

    text = os.environ.get(SHIPPED_ENV_VAR)
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}

