"""Ray Jobs: submit `rlfarm train` to a running Ray cluster, follow it, stop it.

A thin layer over Ray's `JobSubmissionClient` that adds what rlfarm needs:

- Authentication. Ray 2.60 clusters started by `ray start --head` run in token mode
  (RAY_AUTH_MODE=token) when a token exists. The job API then wants an
  `Authorization: Bearer <token>` header. We read the token the way Ray's own loader
  does (RAY_AUTH_TOKEN, else the file at RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token) and
  send the header explicitly, so a client process needs no RAY_AUTH_MODE of its own.
- The address. Ray lets $RAY_ADDRESS override an explicit address; here an explicit
  address wins, and $RAY_API_SERVER_ADDRESS / $RAY_ADDRESS are only the fallback.
- The project as working_dir, without run outputs, VCS data or large files, and the package
  `rlfarm` itself as a py_module (a staged copy of its four folders), so the job runs the code
  that was submitted whether or not the cluster has rlfarm installed.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXCLUDES = [".git", "runs", "**/__pycache__", "*.egg-info", ".pytest_cache", ".venv",
            "build", "dist", "*.gif", "*.pt", "*.tfevents.*"]
"""Never uploaded with the working dir (Ray also skips what .gitignore lists)."""
LARGE_FILE_BYTES = 5 * 2**20
"""Files above this size are left out of the upload as well (data sets, checkpoints)."""
FINISHED = ("SUCCEEDED", "FAILED", "STOPPED")
_PRUNE_DIRS = {".git", "runs", "__pycache__", ".venv", ".pytest_cache", "build", "dist", "node_modules"}


class JobsError(RuntimeError):
    """The job API could not be reached or refused the request; the message says what to do."""


def read_auth_token() -> str | None:
    """The Ray auth token this user would present, or None (the same order as Ray's loader)."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    with contextlib.suppress(OSError):
        token = Path(path).expanduser().read_text().strip()
    return token or None


def resolve_dashboard_address(address: str | None) -> str:
    """The job API address: the argument, else $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS."""
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise JobsError("--address: give the Ray dashboard address, e.g. --address http://HEAD:8265 "
                        "(or set $RAY_ADDRESS)")
    if "://" not in address:
        address = f"http://{address}"
    return address


@contextlib.contextmanager
def _without_address_env() -> Iterator[None]:
    """Ray lets $RAY_ADDRESS override the client's explicit address; hide it meanwhile."""
    saved = {key: os.environ.pop(key) for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS") if key in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def make_client(address: str | None):
    """A JobSubmissionClient for the cluster at `address`, authenticated where a token exists."""
    import logging

    from ray.job_submission import JobSubmissionClient

    # Ray logs every packaging step of the working dir at INFO; keep the terminal for the job.
    logging.getLogger("ray").setLevel(logging.WARNING)
    url = resolve_dashboard_address(address)
    token = read_auth_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with _without_address_env():
            return JobSubmissionClient(url, headers=headers)
    except Exception as err:  # ConnectionError, RuntimeError with Ray's own explanation
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = ""
        if "401" in str(err) or "403" in str(err) or "uthenticat" in str(err):
            hint = (" (the cluster uses token authentication: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH "
                    "to its token, see `ray get-auth-token` on the head)")
        raise JobsError(f"cannot reach the Ray job API at {url}: {message}{hint}") from None


def working_dir_excludes(root: Path = PROJECT_ROOT) -> list[str]:
    """EXCLUDES plus every file above LARGE_FILE_BYTES under `root` (as root-relative paths)."""
    excludes = list(EXCLUDES)
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _PRUNE_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder, name)
            with contextlib.suppress(OSError):
                if path.stat().st_size > LARGE_FILE_BYTES:
                    excludes.append("/" + path.relative_to(root).as_posix())
    return excludes


PACKAGE_PARTS = ("__init__.py", "envs", "agents", "cluster", "experiments")
"""What the package `rlfarm` is made of: the repository root's init and its four folders."""


def stage_package(root: Path, dest: Path) -> Path:
    """Copy the package at `root` to `dest/rlfarm` (sources and data, no caches); returns it.
    Ray names a py_module by its folder, and the checkout's folder has any name."""
    package = dest / "rlfarm"
    package.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in PACKAGE_PARTS:
        source = root / part
        if source.is_dir():
            shutil.copytree(source, package / part, ignore=skip)
        elif source.is_file():
            shutil.copy2(source, package / part)
    return package


def submit(client, entrypoint: str, *, submission_id: str | None = None,
           env_vars: dict[str, str] | None = None, root: Path = PROJECT_ROOT, shipment=None) -> str:
    """Submit `entrypoint` with `root` as the working dir and the package as a py_module;
    returns the job id.

    shipment: the user's code (cluster/launch/ship.py's Shipment): its py_modules go with
    rlfarm's, and where a bridge command names files, their staged copy is the working dir
    instead of `root`."""
    runtime_env: dict = {"working_dir": str(root), "excludes": working_dir_excludes(root)}
    if env_vars:
        runtime_env["env_vars"] = dict(env_vars)
    with tempfile.TemporaryDirectory(prefix="rlfarm-submit-") as staging:
        runtime_env["py_modules"] = [str(stage_package(root, Path(staging)))]
        if shipment is not None:
            user = shipment.runtime_env(Path(staging) / "user")
            runtime_env["py_modules"] += user.get("py_modules", [])
            if "working_dir" in user:
                runtime_env.update(working_dir=user["working_dir"], excludes=list(EXCLUDES))
        try:  # Ray uploads the py_module during the call, so the staged copy can go after it
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env,
                                     submission_id=submission_id)
        except Exception as err:
            raise JobsError(f"the cluster refused the job: {str(err).strip().splitlines()[0]}") from None


def follow_logs(client, job_id: str, write: Callable[[str], None]) -> None:
    """Stream the job's logs to `write` until the job ends (Ray's tail is async)."""

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    asyncio.run(tail())


def wait_finished(client, job_id: str, timeout_s: float = 60.0, poll_s: float = 0.5) -> str:
    """The job's status once it is final (the log stream can end a moment before the status)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get_job_status(job_id)
        status = str(getattr(status, "value", status))
        if status in FINISHED or time.monotonic() > deadline:
            return status
        time.sleep(poll_s)


def job_info(client, job_id: str) -> dict:
    """Status, message, entrypoint, exit code and times of one job, as plain data."""
    try:
        info = client.get_job_info(job_id)
    except Exception as err:
        raise JobsError(f"job {job_id}: {str(err).strip().splitlines()[0]}") from None
    status = getattr(info.status, "value", info.status)
    message = (info.message or "").strip().splitlines()
    return {"job_id": job_id, "status": str(status), "message": message[0] if message else "",
            "entrypoint": info.entrypoint, "driver_exit_code": getattr(info, "driver_exit_code", None),
            "start_time": info.start_time, "end_time": info.end_time}


def list_jobs(client) -> list[dict]:
    """Every job of the cluster (Ray has no users), oldest first, as plain data."""
    try:
        details = client.list_jobs()
    except Exception as err:
        raise JobsError(f"listing jobs: {str(err).strip().splitlines()[0]}") from None
    rows = [{"job_id": d.submission_id or d.job_id, "status": str(getattr(d.status, "value", d.status)),
             "start_time": d.start_time, "end_time": d.end_time,
             "entrypoint": (d.entrypoint or "").splitlines()[0] if d.entrypoint else ""} for d in details]
    return sorted(rows, key=lambda row: row["start_time"] or 0)


def job_logs(client, job_id: str) -> str:
    try:
        return client.get_job_logs(job_id)
    except Exception as err:
        raise JobsError(f"job {job_id}: {str(err).strip().splitlines()[0]}") from None


def stop_job(client, job_id: str) -> bool:
    """Ask the cluster to stop the job; False when it had already finished."""
    try:
        return bool(client.stop_job(job_id))
    except Exception as err:
        raise JobsError(f"job {job_id}: {str(err).strip().splitlines()[0]}") from None
