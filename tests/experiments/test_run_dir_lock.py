"""One writer per run dir (issue 26, case 4): a `--resume` of a run dir that another process
writes (a resume, or the run itself) is refused with exit 2 and one line naming the holder's
PID and host; the lock dies with its holder, so a later resume goes ahead."""
from __future__ import annotations

import socket
import subprocess
import sys

import rlfarm
from rlfarm.experiments.errors import ConfigError
from rlfarm.experiments.run.run_dirs import RunDirLock

from .conftest import only_run_dir

HOLD = ("import sys, time\n"
        "from rlfarm.experiments.run.run_dirs import RunDirLock\n"
        "lock = RunDirLock(sys.argv[1])\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n")


def test_a_second_writer_is_refused_with_the_holders_pid_and_host(write_config, runs_dir, train, capsys):
    assert train(write_config()) == 0
    run_dir = only_run_dir(runs_dir)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert train(None, extra_args=("--resume", str(run_dir))) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in err[0], err
        assert err[0].startswith("rlfarm train: --resume:") or "--resume:" in err[0], err
        assert f"PID {holder.pid}" in err[0] and socket.gethostname() in err[0], err
    finally:
        holder.kill()
        holder.wait()
    # the lock died with its holder: the resume goes ahead
    assert train(None, "stop.env_steps=3072", extra_args=("--resume", str(run_dir))) == 0


def test_a_running_training_holds_its_run_dir(write_config, runs_dir):
    refusals = []

    def try_second_writer(metrics):
        for run_dir in runs_dir.iterdir():
            try:
                RunDirLock(str(run_dir)).release()
            except ConfigError as err:
                refusals.append(str(err))
        return {"stop": True}

    rlfarm.train(str(write_config()), callbacks=[try_second_writer])
    assert len(refusals) == 1 and "one run dir has one writer" in refusals[0], refusals
    RunDirLock(str(only_run_dir(runs_dir))).release()  # released when the run ended
