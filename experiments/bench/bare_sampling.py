"""Runners as plain processes, without Ray: what `rlfarm bench --farm CONFIG --no-ray` measures.

Each process builds the Runner that a farm's runner actor holds (same env, envs per runner,
fragment length, seed stream) and calls `sample()` in a loop; the fragments go nowhere. The
figure is the most the farm's sampling figure can reach on this machine with that many
runners, so `farm / bare` is the share the farm keeps and `bare(2) / bare(1)` is how the
machine's cores scale before Ray adds anything.

The processes are fresh interpreters (`python -m rlfarm.experiments.bench.bare_sampling`), as Ray's workers
are, with one BLAS thread as Ray gives a 1-CPU actor. They report "ready" once their env is
built, and all start their clocks when every one is ready.
"""
from __future__ import annotations

import base64
import json
import os
import pickle
import select
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlfarm.agents.config import PolicyConfig
    from rlfarm.envs.config import EnvConfig

START_TIMEOUT_S = 120.0
"""How long the processes may take to import and build their envs before the run fails."""


class BareRunnerError(RuntimeError):
    """A runner process failed; the message names the runner and its error."""


def bare_sampling(env_cfg: EnvConfig, policy_cfg: PolicyConfig, *, fragment_length: int, num_runners: int,
                  seed: int, seconds: float, warmup_s: float = 2.0) -> dict[str, Any]:
    """Env steps/s of `num_runners` Runner processes sampling side by side (no delivery)."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(num_runners)]  # stderr, read on a failure
    processes = [subprocess.Popen([sys.executable, "-m", "rlfarm.experiments.bench.bare_sampling"], env=env, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
                 for log in logs]
    try:
        for index, process in enumerate(processes):
            job = (env_cfg, policy_cfg, fragment_length, seed, index, seconds, warmup_s)
            _send(process, base64.b64encode(pickle.dumps(job)).decode())
        for index, (process, log) in enumerate(zip(processes, logs)):
            _expect_ready(process, log, index)
        for process in processes:  # every env is built: go
            _send(process, "go")
        reports = [_report(process, log, index, warmup_s + 2 * seconds + 60.0)
                   for index, (process, log) in enumerate(zip(processes, logs))]
    finally:
        for process, log in zip(processes, logs):
            if process.poll() is None:
                process.kill()
            process.wait()
            log.close()
    per_runner = [r["env_steps"] / r["seconds"] for r in reports]
    return {"env_steps_per_s": sum(per_runner), "env_steps": sum(r["env_steps"] for r in reports),
            "seconds": max(r["seconds"] for r in reports), "per_runner_env_steps_per_s": per_runner,
            "env_step_ms": sum(r["env_step_ms"] for r in reports) / len(reports),
            "inference_ms": sum(r["inference_ms"] for r in reports) / len(reports),
            "sampling_cpu_ms_per_fragment": sum(r["sampling_cpu_ms_per_fragment"] for r in reports) / len(reports)}


def _send(process: subprocess.Popen, line: str) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write(line + "\n")
        process.stdin.flush()
    except BrokenPipeError:  # it exited; what it printed says why
        pass


def _expect_ready(process: subprocess.Popen, log: Any, index: int) -> None:
    assert process.stdout is not None
    if not select.select([process.stdout], [], [], START_TIMEOUT_S)[0]:
        raise BareRunnerError(f"runner {index}: not ready after {START_TIMEOUT_S:.0f} s")
    line = process.stdout.readline().strip()  # a failed child prints its error and exits
    if line != "ready":
        raise BareRunnerError(f"runner {index}: {_failure(process, log, line)}")


def _report(process: subprocess.Popen, log: Any, index: int, timeout_s: float) -> dict[str, Any]:
    try:
        out, _err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BareRunnerError(f"runner {index}: no report in {timeout_s:.0f} s") from None
    lines = out.strip().splitlines()
    report = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if "env_steps" not in report:
        raise BareRunnerError(f"runner {index}: {_failure(process, log, out)}")
    return report


def _failure(process: subprocess.Popen, log: Any, out: str) -> str:
    """The child's error line (it prints `error: ...`), else the last line of its stderr."""
    lines = [line for line in out.strip().splitlines() if line.startswith("error: ")]
    if lines:
        return lines[-1][len("error: "):]
    process.wait()
    log.seek(0)
    last = (log.read().strip().splitlines() or [""])[-1]
    return f"the process exited with code {process.returncode}" + (f": {last}" if last else "")


def _child() -> int:
    """The runner process: read the job, build the Runner, say ready, wait for go, sample."""
    try:
        job = pickle.loads(base64.b64decode(sys.stdin.readline()))
        env_cfg, policy_cfg, fragment_length, seed, index, seconds, warmup_s = job
        from rlfarm.cluster.runner import Runner

        runner = Runner(env_cfg, policy_cfg, seed=seed, runner_index=index, fragment_length=fragment_length)
        print("ready", flush=True)
        sys.stdin.readline()  # go
        _sample_for(runner, warmup_s)
        report = _sample_for(runner, seconds)
    except Exception as err:  # the parent names it with the runner index
        print(f"error: {type(err).__name__}: {err}", flush=True)
        return 1
    print(json.dumps(report), flush=True)
    return 0


def _sample_for(runner: Any, seconds: float) -> dict[str, float]:
    """Whole fragments until `seconds` have passed: env steps, seconds, the env step's and
    inference's ms per batched step (as the farm's runners report them), and the CPU ms per
    fragment (as the farm bench's accounting counts the runners' sampling)."""
    steps = rows = fragments = 0
    env_ms = inference_ms = 0.0
    started, started_cpu = time.perf_counter(), time.thread_time()
    while True:
        fragment = runner.sample()
        steps, rows, fragments = steps + fragment.num_steps, rows + fragment.horizon, fragments + 1
        env_ms, inference_ms = env_ms + fragment.env_ms, inference_ms + fragment.inference_ms
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return {"env_steps": steps, "seconds": elapsed, "env_step_ms": env_ms / rows,
                    "inference_ms": inference_ms / rows,
                    "sampling_cpu_ms_per_fragment": 1000.0 * (time.thread_time() - started_cpu) / fragments}


if __name__ == "__main__":
    sys.exit(_child())
