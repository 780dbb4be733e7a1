"""A CartPole simulator that misbehaves in one of the ways issue 26 found: `rude_sim.py MODE [PIDFILE]`.

- close_stdout: answers the first reset, then closes its stdout and keeps running;
- deaf: takes its copies, then never reads again (a large reset request fills the pipe);
- stream: correct, but streams its reset reply copy by copy while it reads the request
  (unbuffered), as a C program with small buffers would;
- fork: starts a helper process that sleeps (and holds no pipe), then behaves;
- setsid: like fork, and also a daemon that leaves the process group and session (setsid)
  and is orphaned at once (double fork), then behaves;
- hang_handshake: never says hello;
- restart_hangs: the first process closes its stdout after the first reset (so it is
  restarted); every later one never says hello (needs PIDFILE, which tells them apart);
- huge_draws: says hello with reset_draws = 2**32 - 1;
- stubborn: correct, but neither the host's quit request nor the end of its input ends it (it
  sleeps on), as a C program whose read loop checks for neither: only a kill does;
- chaos: starts a helper like fork, and after each step closes its stdout and runs on with
  probability P (the third argument).

With PIDFILE, each process this program starts appends its pid there (the test checks that
none outlives the env). Only the standard library: a simulator in any language would do this.
"""
import math
import os
import random
import struct
import sys
import time

MAGIC = b"RLFM"
mode = sys.argv[1]
pidfile = sys.argv[2] if len(sys.argv) > 2 else ""


def note_pid(pid: int = 0) -> None:
    if pidfile:
        with open(pidfile, "a") as stream:
            stream.write(f"{pid or os.getpid()}\n")


def read(size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            if mode == "stubborn":
                time.sleep(3600)
            sys.exit(0)
        data += chunk
    return data


def write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]


def helper() -> None:
    """A child that holds no pipe and sleeps."""
    os.close(0)
    os.close(1)
    time.sleep(3600)  # its parent notes its pid, before the hello: the test may count it at once
    os._exit(0)


def step(s: list, action: int) -> bool:
    x, x_dot, theta, theta_dot = s
    force = 10.0 if action == 1 else -10.0
    cos, sin = math.cos(theta), math.sin(theta)
    temp = (force + 0.05 * theta_dot * theta_dot * sin) / 1.1
    acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos * cos / 1.1))
    x_acc = temp - 0.05 * acc * cos / 1.1
    s[:] = [x + 0.02 * x_dot, x_dot + 0.02 * x_acc, theta + 0.02 * theta_dot, theta_dot + 0.02 * acc]
    return abs(s[0]) > 2.4 or abs(s[2]) > 12 * 2 * math.pi / 360


def main() -> None:
    restarted = bool(pidfile) and os.path.exists(pidfile) and os.path.getsize(pidfile) > 0
    note_pid()
    if mode == "hang_handshake" or (mode == "restart_hangs" and restarted):
        time.sleep(3600)
    if mode in ("fork", "chaos", "setsid"):
        child = os.fork()
        if child == 0:
            helper()
        note_pid(child)
    if mode == "setsid":
        middle = os.fork()
        if middle == 0:
            os.setsid()
            daemon = os.fork()
            if daemon == 0:
                helper()
            note_pid(daemon)
            os._exit(0)  # the daemon's parent ends: it is an orphan in a session of its own
        os.waitpid(middle, 0)
    write(MAGIC + struct.pack("<5I", 1, 4, 0, 2, 2**32 - 1 if mode == "huge_draws" else 4))
    states: list = []
    resets = 0
    while True:
        op, count = struct.unpack("<cI", read(5))
        if op == b"N":
            states = [[0.0] * 4 for _ in range(count)]
            if mode == "deaf":
                time.sleep(3600)
        elif op == b"R":
            index = struct.unpack(f"<{count}I", read(4 * count))
            write(MAGIC)
            for i in index:  # reads one copy's draws, answers it, then the next (streaming)
                unit = struct.unpack("<4d", read(32))
                states[i] = [u * 0.1 - 0.05 for u in unit]
                write(struct.pack("<4f", *states[i]))
            resets += 1
            if mode in ("close_stdout", "restart_hangs"):
                os.close(1)
                time.sleep(3600)
        elif op == b"S":
            actions = struct.unpack(f"<{len(states)}i", read(4 * len(states)))
            done = [step(s, a) for s, a in zip(states, actions)]
            obs = [v for s in states for v in s]
            write(MAGIC + struct.pack(f"<{len(obs)}f", *obs) + struct.pack(f"<{len(states)}f", *[1.0] * len(states))
                  + bytes(done))
            if mode == "chaos" and random.random() < float(sys.argv[3]):
                os.close(1)
                time.sleep(3600)
        else:
            if mode == "stubborn":
                time.sleep(3600)
            return


if __name__ == "__main__":
    main()
