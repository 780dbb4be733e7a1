"""CartPole (gymnasium's CartPole-v1 physics) as an external simulator in plain Python.

Reads requests on stdin and answers on stdout in rlfarm/Subprocess-v0's protocol (see
envs/subprocess_env.py), or on one socket connection with `--listen ADDRESS` (transport
unix or tcp); the same program as cartpole_sim.c. Uses only the standard library,
as a simulator in any language would: nothing from rlfarm or numpy.
"""
import math
import struct
import sys

MAGIC = b"RLFM"
THETA_LIMIT = 12 * 2 * math.pi / 360


def read(stream, size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        sys.exit(0)  # EOF: the host is gone
    return data


def step(s: list, action: int) -> bool:
    x, x_dot, theta, theta_dot = s
    force = 10.0 if action == 1 else -10.0
    cos, sin = math.cos(theta), math.sin(theta)
    temp = (force + 0.05 * theta_dot * theta_dot * sin) / 1.1
    acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos * cos / 1.1))
    x_acc = temp - 0.05 * acc * cos / 1.1
    s[:] = [x + 0.02 * x_dot, x_dot + 0.02 * x_acc, theta + 0.02 * theta_dot, theta_dot + 0.02 * acc]
    return abs(s[0]) > 2.4 or abs(s[2]) > THETA_LIMIT


def listen(address: str):
    """`--listen ADDRESS` (transport unix or tcp): serve one connection on a socket path or
    HOST:PORT instead of stdin/stdout; returns its (reader, writer) streams."""
    import socket

    if address.startswith("/") or ":" not in address:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address)
    else:
        host, port = address.rsplit(":", 1)
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, int(port)))
    server.listen(1)
    conn, _ = server.accept()
    server.close()
    if conn.family == socket.AF_INET:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn.makefile("rb"), conn.makefile("wb")


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    if "--listen" in sys.argv:
        stdin, stdout = listen(sys.argv[sys.argv.index("--listen") + 1])
    stdout.write(MAGIC + struct.pack("<5I", 1, 4, 0, 2, 4))
    stdout.flush()
    states: list = []
    while True:
        op, count = struct.unpack("<cI", read(stdin, 5))
        if op == b"N":
            states = [[0.0] * 4 for _ in range(count)]
            continue
        if op == b"R":
            index = struct.unpack(f"<{count}I", read(stdin, 4 * count))
            unit = struct.unpack(f"<{4 * count}d", read(stdin, 32 * count))
            obs = []
            for k, i in enumerate(index):
                states[i] = [u * 0.1 - 0.05 for u in unit[4 * k:4 * k + 4]]
                obs += states[i]
            stdout.write(MAGIC + struct.pack(f"<{len(obs)}f", *obs))
        elif op == b"S":
            actions = struct.unpack(f"<{len(states)}i", read(stdin, 4 * len(states)))
            done = [step(s, a) for s, a in zip(states, actions)]
            obs = [v for s in states for v in s]
            stdout.write(MAGIC + struct.pack(f"<{len(obs)}f", *obs)
                         + struct.pack(f"<{len(states)}f", *[1.0] * len(states)) + bytes(done))
        else:
            return
        stdout.flush()


if __name__ == "__main__":
    main()
