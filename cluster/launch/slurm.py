"""SLURM: write the sbatch script that brings Ray up across an allocation, submit it, follow it.

The logic of the script lives once, in the static template `cluster/launch/slurm/rlfarm.sbatch`
(read it: its header says what it does and why). `render_script` fills in the template's
`#SBATCH` lines and its settings block; nothing else in the template changes, so a script
written by `rlfarm slurm` and the hand-edited template behave the same.

Only the standard SLURM client commands are used (sbatch, scontrol, sacct), through
subprocess, so no SLURM Python binding is needed.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = Path(__file__).with_name("slurm") / "rlfarm.sbatch"
SETTINGS_BEGIN = "# >>> rlfarm settings"
SETTINGS_END = "# <<< rlfarm settings"
_DIRECTIVE_VALUE = re.compile(r"[^\s\"'\\\x00-\x1f\x7f]{1,4096}")
"""What an #SBATCH value may hold: sbatch splits its directives at whitespace and reads quotes,
and a newline would end the directive and start a script line."""
FINISHED_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                   "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")


@dataclass
class SlurmJobSpec:
    """What one sbatch script asks SLURM for, and what it trains."""

    config: str
    """The experiment config, as `rlfarm train` will see it from `workdir` (relative is best)."""
    nodes: int
    """Nodes in the allocation (in a heterogeneous job: its GPU component); the first runs the
    Ray head and the driver."""
    gpus_per_node: int = 0
    """GPUs per node; learners get one each."""
    cpus_per_node: int | None = None
    """Cores per node; None takes whole nodes (--exclusive)."""
    partition: str | None = None
    time: str = "01:00:00"
    account: str | None = None
    job_name: str = "rlfarm"
    output: str = "rlfarm-%j.out"
    """The job's log file (sbatch --output; %j is the job id)."""
    overrides: list[str] = field(default_factory=list)
    """`--set KEY=VALUE` strings passed to `rlfarm train` after the script's own."""
    workdir: str = "."
    """The rlfarm checkout the job runs in (on a shared filesystem)."""
    python: str = sys.executable
    """The Python interpreter with rlfarm installed, on every node."""
    cpu_nodes: int = 0
    """> 0: a heterogeneous job (`#SBATCH hetjob`) whose second component has this many CPU
    nodes for the runners; `nodes`/`partition`/`gpus_per_node` then describe the GPU component."""
    cpu_partition: str | None = None
    """The CPU component's partition (heterogeneous jobs only)."""
    command: str = "train"
    """What the job runs on its Ray cluster: `rlfarm train` or `rlfarm sweep` (trials share it)."""
    requeue: bool = False
    """Outlive the time limit: SLURM signals USR1 `requeue_warning_s` before it, the training
    checkpoints and stops, the job requeues itself and its next start resumes `run_dir`."""
    requeue_warning_s: int = 300
    """Seconds before the time limit for the USR1 warning (SLURM may send it up to 60 s
    earlier); the current update, a checkpoint and Ray's shutdown must fit in it."""
    run_dir: str = ""
    """The run dir every start of the job trains into (absolute; required with `requeue`)."""

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"--nodes: must be >= 1, got {self.nodes}")
        if self.cpu_nodes < 0:
            raise ValueError(f"--cpu-nodes: must be >= 0, got {self.cpu_nodes}")
        if self.gpus_per_node < 0:
            raise ValueError(f"--gpus-per-node: must be >= 0, got {self.gpus_per_node}")
        if self.cpus_per_node is not None and self.cpus_per_node < 1:
            raise ValueError(f"--cpus-per-node: must be >= 1, got {self.cpus_per_node}")
        if not re.fullmatch(r"(\d+-)?\d{1,3}(:\d\d){0,2}|\d+", self.time):
            raise ValueError(f"--time: expected [D-]HH:MM:SS or minutes, got {self.time!r}")
        if not 1 <= self.requeue_warning_s <= 65535:
            raise ValueError(f"--requeue-warning-s: must be in 1..65535, got {self.requeue_warning_s}")
        if self.requeue and not self.run_dir:
            raise ValueError("--requeue: needs the run dir that every start of the job resumes")
        for option, value in (("--job-name", self.job_name), ("--output", self.output),
                              ("--chdir", self.workdir), ("--partition", self.partition),
                              ("--account", self.account)):
            if value is not None and not _DIRECTIVE_VALUE.fullmatch(value):
                raise ValueError(f"{option}: {value!r} cannot go on an #SBATCH line (no spaces, quotes, "
                                 "backslashes or control characters; at most 4096 characters)")


def sbatch_lines(spec: SlurmJobSpec) -> list[str]:
    """The `#SBATCH` directives for `spec` (one Ray node = one task per node). A heterogeneous
    job gets the GPU component first (the batch script, the head), then `hetjob` and the CPU one."""
    lines = [f"--job-name={spec.job_name}", *_component(spec.nodes, spec.cpus_per_node, spec.gpus_per_node)]
    lines += [f"--time={spec.time}", f"--output={spec.output}", f"--chdir={spec.workdir}"]
    if spec.partition:
        lines.append(f"--partition={spec.partition}")
    if spec.account:
        lines.append(f"--account={spec.account}")
    if spec.requeue:  # the log collects every segment (a requeued job would truncate it)
        lines += [f"--signal=B:USR1@{spec.requeue_warning_s}", "--requeue", "--open-mode=append"]
    if spec.cpu_nodes:
        lines += ["hetjob", *_component(spec.cpu_nodes, spec.cpus_per_node, 0)]
        if spec.cpu_partition:
            lines.append(f"--partition={spec.cpu_partition}")
    return [f"#SBATCH {line}" for line in lines]


def _component(nodes: int, cpus_per_node: int | None, gpus_per_node: int) -> list[str]:
    lines = [f"--nodes={nodes}", "--ntasks-per-node=1"]
    lines.append("--exclusive" if cpus_per_node is None else f"--cpus-per-task={cpus_per_node}")
    if gpus_per_node:
        lines.append(f"--gpus-per-node={gpus_per_node}")
    return lines


def settings_block(spec: SlurmJobSpec) -> list[str]:
    overrides = " ".join(f"--set {shlex.quote(item)}" for item in spec.overrides)
    return [
        SETTINGS_BEGIN,
        f"RLFARM_COMMAND={shlex.quote(spec.command)}",
        f"RLFARM_CONFIG={shlex.quote(spec.config)}",
        f"RLFARM_OVERRIDES=({overrides})",
        f"RLFARM_GPUS_PER_NODE={spec.gpus_per_node}",
        f"RLFARM_HET_CPU_NODES={spec.cpu_nodes}",
        f"RLFARM_REQUEUE={int(spec.requeue)}",
        f"RLFARM_RUN_DIR={shlex.quote(spec.run_dir)}",
        f"RLFARM_WORKDIR={shlex.quote(spec.workdir)}",
        f"RLFARM_PYTHON={shlex.quote(spec.python)}",
        SETTINGS_END,
    ]


def render_script(spec: SlurmJobSpec, template: str | None = None) -> str:
    """The sbatch script for `spec`: the template with its directives and settings filled in."""
    text = TEMPLATE.read_text() if template is None else template
    lines = text.splitlines()
    begin, end = lines.index(SETTINGS_BEGIN), lines.index(SETTINGS_END)
    lines[begin:end + 1] = settings_block(spec)
    directive_rows = [i for i, line in enumerate(lines) if line.startswith("#SBATCH ")]
    first, last = directive_rows[0], directive_rows[-1]
    lines[first:last + 1] = sbatch_lines(spec)
    return "\n".join(lines) + "\n"


# ---- talking to SLURM ----------------------------------------------------------------------

def slurm_unavailable_reason() -> str | None:
    """None when sbatch can reach a controller with a usable node, else why not."""
    for command in ("sbatch", "sinfo", "scontrol"):
        if shutil.which(command) is None:
            return f"`{command}` is not on PATH (run this on a SLURM login node, or load your site's SLURM module)"
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld does not answer"
    if result.returncode != 0:
        return f"slurmctld does not answer: {result.stderr.strip() or result.stdout.strip()}"
    states = result.stdout.split()
    # "planned": idle, but held by the backfill scheduler for a pending job (SLURM 22.05+).
    if not any(state.rstrip("*~#").startswith(("idle", "mixed", "alloc", "planned", "completing"))
               for state in states):
        return f"no SLURM node is up (node states: {', '.join(states) or 'none'})"
    return None


def submit(script_path: str | os.PathLike, extra_args: list[str] | None = None) -> str:
    """`sbatch` the script; returns the job id."""
    command = ["sbatch", "--parsable", *(extra_args or []), os.fspath(script_path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"sbatch failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip().split(";")[0]


def job_state(job_id: str) -> tuple[str, str]:
    """(state, exit code "N:S") of a job. Without slurmdbd, `scontrol` knows a finished job
    for MinJobAge seconds; `sacct` is the fallback where accounting runs."""
    result = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True)
    if result.returncode == 0 and "JobState=" in result.stdout:
        state = re.search(r"JobState=(\S+)", result.stdout).group(1)
        exit_code = re.search(r"ExitCode=(\S+)", result.stdout)
        return state, exit_code.group(1) if exit_code else "?"
    result = subprocess.run(["sacct", "-X", "-n", "-P", "-j", str(job_id), "-o", "State,ExitCode"],
                            capture_output=True, text=True)
    rows = [row for row in result.stdout.splitlines() if row.strip()]
    if result.returncode == 0 and rows:
        state, exit_code = rows[0].split("|")
        return state.split()[0], exit_code
    return "UNKNOWN", "?"


def wait_job(job_id: str, timeout_s: float | None = None, poll_s: float = 2.0) -> tuple[str, str]:
    """Poll until the job finishes (or `timeout_s` passes); returns its last (state, exit code)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        state, exit_code = job_state(job_id)
        if state in FINISHED_STATES:
            return state, exit_code
        if deadline is not None and time.monotonic() > deadline:
            return state, exit_code
        time.sleep(poll_s)


JOB_COLUMNS = ("job_id", "name", "state", "run_time", "time_limit", "nodes", "restarts", "where")
"""The fields of `list_jobs`' rows; `where` is the node list of a started job, else the reason
it waits."""


def list_jobs(uid: int | None = None) -> list[dict[str, str]]:
    """This user's jobs, oldest first: every job the controller knows (`scontrol show job`:
    pending, running, and finished within MinJobAge), then older ones from `sacct` where
    accounting runs. A heterogeneous job is one row (its first component)."""
    import pwd

    uid = os.getuid() if uid is None else uid
    result = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"scontrol show job: {result.stderr.strip() or result.stdout.strip()}")
    rows = [row for line in result.stdout.splitlines()
            if (row := _scontrol_row(line, uid)) is not None]
    known = {row["job_id"] for row in rows}
    return rows + [row for row in _sacct_rows(pwd.getpwuid(uid).pw_name) if row["job_id"] not in known]


def _scontrol_row(line: str, uid: int) -> dict[str, str] | None:
    def field_of(name: str) -> str:
        match = re.search(rf"(?:^| ){re.escape(name)}=(\S*)", line)
        return match.group(1) if match else ""

    owner = re.search(r"UserId=\S*\((\d+)\)", line)
    if not owner or int(owner.group(1)) != uid or field_of("HetJobOffset") not in ("", "0"):
        return None
    name = re.search(r"JobName=(.*?) [A-Za-z]+=", line)
    state = field_of("JobState")
    where = field_of("NodeList") if state not in ("PENDING", "REQUEUED") else f"({field_of('Reason')})"
    return {"job_id": field_of("JobId"), "name": name.group(1) if name else "", "state": state,
            "run_time": field_of("RunTime"), "time_limit": field_of("TimeLimit"),
            "nodes": field_of("NumNodes"), "restarts": field_of("Restarts"), "where": where}


def _sacct_rows(user: str) -> list[dict[str, str]]:
    """Finished jobs from the accounting database (none without slurmdbd)."""
    if shutil.which("sacct") is None:
        return []
    result = subprocess.run(["sacct", "-X", "-n", "-P", "-u", user, "-S", "now-7days",
                             "-o", "JobID,JobName,State,Elapsed,Timelimit,NNodes,NodeList"],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:  # "Slurm accounting storage is disabled"
        return []
    rows = []
    for line in result.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 7 and not re.search(r"\+[1-9]", parts[0]):  # a hetjob's later parts: ID+1
            job_id, name, state, elapsed, limit, nodes, where = parts
            rows.append({"job_id": job_id.split("+")[0], "name": name, "state": state.split()[0],
                         "run_time": elapsed, "time_limit": limit, "nodes": nodes, "restarts": "-",
                         "where": where})
    return rows
