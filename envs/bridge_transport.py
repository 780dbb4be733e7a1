"""Socket transports for rlfarm/Subprocess-v0: the simulator as a server (`env.kwargs.transport`).

The bytes are the bridge's protocol unchanged (envs/subprocess_env.py); only the channel differs:

- `pipes` (default): the program's stdin and stdout. Fits every program that is a child of
  the runner, launchers included (`mpirun -n 2 ./sim`, where mpirun forwards stdin to rank 0
  and the ranks' stdout back);
- `unix`: the program listens on a Unix socket, rlfarm connects. Fits a simulator whose
  stdout is taken (it logs there, or a framework owns it) and a server that wants a socket;
- `tcp`: the same over TCP. Fits a simulator that listens on a port by design (a server
  framework, a licensed code on a host of its own).

rlfarm starts the command with `{address}` replaced by the address to listen on (a fresh
socket path in a private temp dir, or `HOST:PORT` with a free port on `host`, loopback by
default), then connects, retrying until the program listens or `connect_timeout_s` passes.
Handshake, step timeouts, restart after a fault and error counting are the pipes' own: a
dead server is killed, started again on a fresh address, reconnected and its copies reset.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

from rlfarm.envs import bridge_process

TRANSPORTS = ("pipes", "unix", "tcp")


class ServerChannel:
    """A started server program and rlfarm's connection to it."""

    def __init__(self, command: list[str], transport: str, host: str, connect_timeout_s: float):
        self.tmpdir = None
        if transport == "unix":
            self.tmpdir = tempfile.mkdtemp(prefix="rlfarm-sim-")
            address: str | tuple[str, int] = os.path.join(self.tmpdir, "sim.sock")
            shown = address
        else:
            address = (host, _free_port(host))
            shown = f"{host}:{address[1]}"
        family = socket.AF_UNIX if transport == "unix" else socket.AF_INET
        try:
            self.proc = bridge_process.start([part.replace("{address}", shown) for part in command],
                                             stdin=subprocess.DEVNULL)  # supervised, as with pipes
        except OSError:
            self.close()  # the socket's folder
            raise
        deadline = time.monotonic() + connect_timeout_s
        while True:
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                self.sock.connect(address)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    reason = (f"it exited with code {self.proc.returncode}" if self.proc.poll() is not None
                              else f"within {connect_timeout_s:g} s")
                    bridge_process.stop(self.proc)
                    self.close()
                    raise ConnectionError(f"the program did not listen on {shown} ({reason})") from None
                time.sleep(0.02)
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small requests, each awaited
        self.sock.setblocking(False)
        # The bridge polls its output and input fds apart; a duplicate gives the one socket two.
        self.in_fd, self.out_fd = self.sock.fileno(), os.dup(self.sock.fileno())
        self.address = shown

    def close(self) -> None:
        """Close rlfarm's end (the program is the bridge's to kill) and the socket's folder."""
        for fd in (getattr(self, "out_fd", None),):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                self.out_fd = None
        try:
            self.sock.close()
        except (AttributeError, OSError):
            pass
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]

