"""The sbatch script that `rlfarm slurm` writes: a golden file for --nodes 4 --gpus-per-node 4,
the head and worker commands, the resource flags, and the script's own bash functions
(sourced with RLFARM_SOURCE_ONLY=1) run on made-up SLURM values.

Regenerate the golden file after an intended change of the template with
    RLFARM_UPDATE_GOLDEN=1 python -m pytest tests/cluster/test_slurm_script.py
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from rlfarm.cluster.launch import slurm

GOLDEN = Path(__file__).parent / "golden" / "slurm_nodes4_gpus4.sbatch"
TEMPLATE = slurm.TEMPLATE


def golden_spec() -> slurm.SlurmJobSpec:
    return slurm.SlurmJobSpec(
        config="experiments/configs/cartpole_ppo.yaml", nodes=4, gpus_per_node=4,
        partition="gpu", time="02:00:00", account="rl-project", job_name="rlfarm-cartpole-ppo",
        output="/shared/rlfarm/runs/slurm/cartpole-ppo-%j.out",
        overrides=["algo.lr=1e-3", "log.dir=/shared/rlfarm/runs"],
        workdir="/shared/rlfarm", python="/opt/venv/bin/python")


@pytest.fixture(scope="module")
def script() -> str:
    return slurm.render_script(golden_spec())


def run_bash(code: str, **env: str) -> subprocess.CompletedProcess:
    """Source the template's functions (nothing runs) and execute `code` after them."""
    full_env = {**os.environ, "RLFARM_SOURCE_ONLY": "1", **env}
    return subprocess.run(["bash", "-c", f"source {TEMPLATE} && {code}"], capture_output=True,
                          text=True, env=full_env, timeout=60)


def test_golden_file(script):
    if os.environ.get("RLFARM_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(script)
    assert script == GOLDEN.read_text(), "the generated script changed; see the module docstring"


def test_resource_directives(script):
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives == [
        "#SBATCH --job-name=rlfarm-cartpole-ppo",
        "#SBATCH --nodes=4",
        "#SBATCH --ntasks-per-node=1",          # one Ray node per SLURM node
        "#SBATCH --exclusive",                  # no --cpus-per-node: whole nodes
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --time=02:00:00",
        "#SBATCH --output=/shared/rlfarm/runs/slurm/cartpole-ppo-%j.out",
        "#SBATCH --chdir=/shared/rlfarm",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=rl-project",
    ]
    assert "RLFARM_GPUS_PER_NODE=4" in script
    assert "RLFARM_OVERRIDES=(--set algo.lr=1e-3 --set log.dir=/shared/rlfarm/runs)" in script


def _command(script: str, start: str, containing: str = "") -> str:
    """The (backslash-continued) command that starts with `start` and contains `containing`."""
    lines = script.splitlines()
    for index, line in enumerate(lines):
        if not line.strip().startswith(start):
            continue
        parts = [line]
        while parts[-1].endswith("\\"):
            index += 1
            parts.append(lines[index])
        command = " ".join(part.rstrip("\\").strip() for part in parts)
        if containing in command:
            return command
    raise AssertionError(f"no command {start!r} containing {containing!r}")


def test_head_command(script):
    head = _command(script, "ray start --head")
    assert '--node-ip-address "$RF_HEAD_IP" --port "$RF_PORT_GCS"' in head
    assert "--dashboard-host 127.0.0.1" in head  # the job API on loopback only
    assert '--dashboard-port "$RF_PORT_DASHBOARD"' in head
    assert '--ray-client-server-port "$RF_PORT_CLIENT"' in head
    assert head.endswith('"${RF_FLAGS[@]}" &')
    start = script.index("RF_FLAGS=(")
    flags = " ".join(script[start:script.index(")\n", start)].split())
    for flag in ("--block", '--temp-dir "$RF_TMP"', '--num-gpus "$gpus"',
                 '--resources "$resources"', '--dashboard-agent-listen-port "$RF_PORT_AGENT_HTTP"',
                 "--object-manager-port 0", "--min-worker-port 0 --max-worker-port 0"):
        assert flag in flags
    # Token auth on for the head, the workers and the driver (they inherit the environment).
    assert "export RAY_AUTH_MODE=token" in script


def test_worker_command_and_order(script):
    workers = _command(script, 'srun --overlap --nodes=$(( RF_NUM_NODES - 1 ))', "rf_start_worker")
    cleanup = _command(script, 'srun --overlap --nodes=$(( RF_NUM_NODES - 1 ))', "rf_cleanup_node")
    assert '--exclude="$RF_HEAD_NODE"' in cleanup  # Ray stopped on every worker node at the end
    assert "--ntasks=$(( RF_NUM_NODES - 1 ))" in workers and "--ntasks-per-node=1" in workers
    assert '--exclude="$RF_HEAD_NODE"' in workers
    assert workers.endswith("bash -c rf_start_worker &")
    assert 'exec ray start --address "$RF_HEAD_ADDRESS" "${RF_FLAGS[@]}"' in script
    # Order: the head, wait for it, the workers, wait for every node, then train.
    order = [script.index(s) for s in ("ray start --head", "rf_wait_nodes 1 120", "bash -c rf_start_worker",
                                       'rf_wait_nodes "$RF_NUM_NODES"', "rf_train_command\n")]
    assert order == sorted(order)
    train = _command(script, 'RF_TRAIN=("$RLFARM_PYTHON" -m rlfarm.experiments.cli "$RLFARM_COMMAND"')
    assert "RLFARM_COMMAND=train" in script
    assert '"$RLFARM_CONFIG" --address "$RF_HEAD_ADDRESS")' in train
    assert 'rf_run_driver "${RF_TRAIN[@]}" "${RF_SET[@]}" "${RLFARM_OVERRIDES[@]}"' in script
    assert 'exit "$RF_STATUS"' in script and "trap rf_shutdown EXIT" in script


def test_script_is_valid_bash(script, tmp_path):
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    assert subprocess.run(["bash", "-n", str(TEMPLATE)], capture_output=True).returncode == 0


def test_rendering_changes_only_directives_and_settings(script):
    def logic(text: str) -> list[str]:
        lines = text.splitlines()
        begin, end = lines.index(slurm.SETTINGS_BEGIN), lines.index(slurm.SETTINGS_END)
        return [line for line in lines[:begin] + lines[end + 1:] if not line.startswith("#SBATCH")]

    assert logic(script) == logic(TEMPLATE.read_text())


def test_cpus_per_node_and_no_gpus():
    text = slurm.render_script(slurm.SlurmJobSpec(config="c.yaml", nodes=2, cpus_per_node=16))
    assert "#SBATCH --cpus-per-task=16" in text and "--exclusive" not in text
    assert "--gpus-per-node" not in text and "RLFARM_GPUS_PER_NODE=0" in text


@pytest.mark.parametrize("kwargs, field", [({"nodes": 0}, "--nodes"), ({"gpus_per_node": -1}, "--gpus-per-node"),
                                           ({"cpus_per_node": 0}, "--cpus-per-node"), ({"time": "soon"}, "--time")])
def test_bad_spec_names_the_option(kwargs, field):
    with pytest.raises(ValueError, match=field):
        slurm.SlurmJobSpec(**{"config": "c.yaml", "nodes": 1, **kwargs})


# ---- the script's bash functions on made-up allocations ----------------------------------

def test_node_resources_give_runners_cores_and_learners_gpus():
    # 4 nodes x 32 cores x 4 GPUs: the head keeps a core for the driver, every GPU a core for its learner.
    out = run_bash("rf_node_resources head 32 4; rf_node_resources worker 32 4; "
                   "rf_node_resources head 8 0; rf_node_resources head 1 0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:4] == ["31 27", "32 28", "7 6", "2 1"]  # "Ray CPUs, cpu_node slots"


def test_train_overrides_match_the_slots():
    out = run_bash('rf_train_sets "$(rf_total_cores "32(x4)")" 16; printf "%s\\n" "${RF_SET[@]}"')
    assert out.returncode == 0, out.stderr
    sets = out.stdout.split("\n")
    assert "farm.mode=ray" in sets
    assert "farm.runner_slots=111" in sets       # 27 + 3 x 28 cpu_node slots
    assert "farm.num_learners=16" in sets
    assert 'farm.runner_resources={"num_cpus": 1, "resources": {"cpu_node": 1}}' in sets
    assert 'farm.learner_resources={"num_cpus": 1, "num_gpus": 1}' in sets
    assert run_bash('rf_total_cores "36(x3),72"').stdout.strip() == "180"


def test_overrides_parse_in_the_config_loader():
    """The script's --set values are valid for experiments/config.py (YAML flow mappings)."""
    from rlfarm.experiments.config import apply_overrides, config_from_dict

    out = run_bash('rf_train_sets 128 16; printf "%s\\n" "${RF_SET[@]}"')
    sets = [s for s in out.stdout.split("\n") if s and s != "--set"]
    raw = apply_overrides({"stop": {"env_steps": 1000}, "env": {"envs_per_runner": 64},
                           "farm": {"num_runners": 2, "fragment_length": 32}, "algo": {"target_kl": None}}, sets)
    cfg = config_from_dict(raw)
    assert cfg.farm.runner_resources == {"num_cpus": 1, "resources": {"cpu_node": 1}}
    assert cfg.farm.learner_resources == {"num_cpus": 1, "num_gpus": 1}
    assert cfg.farm.num_learners == 16
    # 128 copies over 111 slots: 64 runners x 2 copies, the batch still 128 x 32 env steps.
    assert (cfg.farm.runner_slots, cfg.farm.num_runners, cfg.env.envs_per_runner) == (111, 64, 2)
    assert cfg.farm.batch_size == 128 * 32


def _ports(job_id: int) -> dict[str, int]:
    out = run_bash("rf_pick_ports", SLURM_JOB_ID=str(job_id), RLFARM_PYTHON="python3")
    assert out.returncode == 0, out.stderr
    return {k: int(v) for k, v in (line.split("=") for line in out.stdout.split())}


def test_ports_differ_per_job_and_skip_a_taken_block():
    first, second = _ports(4242), _ports(4243)
    assert len(first) == 7 and len(set(first.values())) == 7
    assert all(20000 <= p < 32760 for p in first.values())
    assert set(first.values()).isdisjoint(second.values())   # neighbouring jobs: other blocks
    with socket.socket() as taken:                           # someone holds the job's GCS port
        taken.bind(("", first["RF_PORT_GCS"]))
        taken.listen()
        moved = _ports(4242)
    assert first["RF_PORT_GCS"] not in moved.values()


def test_long_temp_dir_is_refused_before_ray_starts(tmp_path):
    too_long = "/tmp/" + "x" * 50  # 55 bytes + 64 for Ray's session/socket names > 107
    script = tmp_path / "job.sbatch"
    script.write_text(slurm.render_script(slurm.SlurmJobSpec(config="c.yaml", nodes=1, workdir=str(tmp_path))))
    env = {**os.environ, "RLFARM_RAY_TMP": too_long, "SLURM_JOB_ID": "7"}
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert re.search(r"107-byte AF_UNIX limit", out.stderr)
    assert not os.path.exists(too_long)


def test_cli_writes_the_script_and_prints_it(tmp_path, monkeypatch, capsys):
    from rlfarm.experiments.cli import main

    config = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "cartpole_ppo.yaml"
    out = tmp_path / "job.sbatch"
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    assert main(["slurm", str(config), "--nodes", "4", "--gpus-per-node", "4", "--output", str(out)]) == 0
    text = out.read_text()
    printed = capsys.readouterr()
    assert printed.out == text  # the script itself on stdout, ready to read or pipe to sbatch
    assert f"wrote {out}" in printed.err and f"sbatch {out}" in printed.err
    assert "RLFARM_CONFIG=experiments/configs/cartpole_ppo.yaml" in text  # relative to the checkout
    assert "#SBATCH --gpus-per-node=4" in text
    assert main(["slurm", str(config), "--nodes", "0", "--output", str(out)]) == 2
    assert main(["slurm", str(config), "--nodes", "1", "--set", "farm.num_runners=0",
                 "--output", str(tmp_path / "bad.sbatch")]) == 2
    assert not (tmp_path / "bad.sbatch").exists()


def test_heterogeneous_job_has_a_gpu_then_a_cpu_component():
    spec = slurm.SlurmJobSpec(config="c.yaml", nodes=1, gpus_per_node=2, partition="gpu", cpu_nodes=3,
                              cpu_partition="cpu", cpus_per_node=8)
    lines = slurm.sbatch_lines(spec)
    split = lines.index("#SBATCH hetjob")
    gpu, cpu = lines[:split], lines[split + 1:]
    assert {"#SBATCH --nodes=1", "#SBATCH --gpus-per-node=2", "#SBATCH --partition=gpu"} <= set(gpu)
    assert {"#SBATCH --nodes=3", "#SBATCH --partition=cpu", "#SBATCH --cpus-per-task=8"} <= set(cpu)
    assert not any("gpus" in line for line in cpu)
    assert "RLFARM_HET_CPU_NODES=3" in slurm.render_script(spec)


@pytest.mark.parametrize("kind, expected", [("cpu", ["8", "0", '{"cpu_node": 8}']),
                                            ("gpu", ["8", "2", '{"gpu_node": 2}'])])
def test_hetjob_nodes_advertise_only_their_kind(kind, expected, tmp_path):
    script = tmp_path / "job.sbatch"
    script.write_text(slurm.render_script(slurm.SlurmJobSpec(config="c.yaml", nodes=1, gpus_per_node=2,
                                                             cpu_nodes=1, workdir=str(tmp_path))))
    body = f"source {script}; RF_TMP=/tmp/x; eval \"$(rf_pick_ports)\"; rf_ray_common_flags worker; printf '%s\\n' \"${{RF_FLAGS[@]}}\""
    env = {**os.environ, "RLFARM_SOURCE_ONLY": "1", "RF_NODE_KIND": kind, "SLURM_CPUS_ON_NODE": "8"}
    flags = subprocess.run(["bash", "-c", body], capture_output=True, text=True, env=env).stdout.splitlines()
    got = [flags[flags.index(name) + 1] for name in ("--num-cpus", "--num-gpus", "--resources")]
    assert got == expected


# ---- --requeue: USR1 before the time limit, checkpoint, requeue, resume ------------------

def test_requeue_asks_for_the_warning_signal_and_fixes_the_run_dir():
    spec = slurm.SlurmJobSpec(config="c.yaml", nodes=1, requeue=True, requeue_warning_s=90,
                              run_dir="/shared/runs/c-1")
    lines = slurm.sbatch_lines(spec)
    assert {"#SBATCH --signal=B:USR1@90", "#SBATCH --requeue", "#SBATCH --open-mode=append"} <= set(lines)
    text = slurm.render_script(spec)
    assert "RLFARM_REQUEUE=1" in text and "RLFARM_RUN_DIR=/shared/runs/c-1" in text
    plain = slurm.render_script(slurm.SlurmJobSpec(config="c.yaml", nodes=1))
    assert "#SBATCH --signal" not in plain and "RLFARM_REQUEUE=0" in plain


@pytest.mark.parametrize("kwargs, field", [({"requeue": True}, "--requeue"),
                                           ({"requeue_warning_s": 0}, "--requeue-warning-s")])
def test_bad_requeue_spec_names_the_option(kwargs, field):
    with pytest.raises(ValueError, match=field):
        slurm.SlurmJobSpec(config="c.yaml", nodes=1, **kwargs)


def test_train_command_starts_then_resumes_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    show = (f'RLFARM_RUN_DIR={run_dir} RF_HEAD_ADDRESS=h:1; rf_train_command; '
            'printf "%s\\n" "${RF_TRAIN[@]:5}"')  # after PYTHON -m rlfarm.experiments.cli train CONFIG
    assert run_bash(show).stdout.split() == ["--address", "h:1", "--run-dir", str(run_dir)]
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "ckpt-000000001024.pt").write_bytes(b"")
    assert run_bash(show).stdout.split() == ["--address", "h:1", "--resume", str(run_dir)]
    (run_dir / "checkpoints" / "ckpt-000000001024.pt").unlink()  # a start that died before one
    out = run_bash(show)
    assert out.stdout.split()[-2:] == ["--run-dir", str(run_dir)] and not run_dir.exists()
    assert "has no checkpoint: moving it to" in out.stderr
    assert len(list(tmp_path.glob("run.failed-*"))) == 1


DRIVER = """
import signal, sys, time
time.sleep(1.5)  # USR1 arrives before the handler exists: it must neither kill nor be lost
signal.signal(signal.SIGUSR1, lambda *_: sys.exit(138))
time.sleep(30)
sys.exit(0)
"""


def test_usr1_reaches_a_driver_that_listens_late(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    code = (f"set +e; trap rf_on_usr1 USR1; (sleep 0.3; kill -USR1 $$) & "
            f"rf_run_driver {os.sys.executable} {driver}; echo status=$?")
    out = run_bash(code)
    assert "status=138" in out.stdout, out.stdout + out.stderr
    assert "USR1: the time limit is near" in out.stderr


def test_sweep_job_runs_rlfarm_sweep_into_its_sweep_dir(tmp_path):
    """`rlfarm slurm --sweep`: the same allocation and Ray cluster, `rlfarm sweep` as the
    driver, the fixed run dir as the sweep's --out (run by bash, with made-up SLURM values)."""
    spec = slurm.SlurmJobSpec(config="experiments/examples/sweep_cartpole.yaml", nodes=2, command="sweep",
                              run_dir=str(tmp_path / "sweep"), workdir=str(tmp_path))
    script = slurm.render_script(spec)
    assert "RLFARM_COMMAND=sweep" in script
    path = tmp_path / "sweep.sbatch"
    path.write_text(script)
    out = subprocess.run(["bash", "-c", f'source {path} && rf_train_command && printf "%s\\n" "${{RF_TRAIN[@]}}"'],
                         env={**os.environ, "RLFARM_SOURCE_ONLY": "1", "RF_HEAD_ADDRESS": "198.18.0.1:6379"},
                         capture_output=True, text=True, timeout=30)
    words = out.stdout.split()
    assert words[-6:] == ["sweep", "experiments/examples/sweep_cartpole.yaml", "--address", "198.18.0.1:6379",
                          "--out", str(tmp_path / "sweep")], (out.stdout, out.stderr[-500:])
