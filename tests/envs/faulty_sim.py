"""The Python reference CartPole simulator, misbehaving once: `faulty_sim.py MODE AFTER MARKER`.

The first incarnation (MARKER does not exist yet: it creates it) answers AFTER replies,
then crashes (MODE=crash), hangs (MODE=hang) or sends garbage (MODE=garble); a restarted
one finds MARKER and behaves.
"""
import os
import sys
import time

from rlfarm.envs.sims import cartpole_sim

mode, after, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]


class FaultyStdout:
    def __init__(self, buffer):
        self.buffer, self.replies = buffer, 0

    def write(self, data: bytes) -> int:
        if data.startswith(cartpole_sim.MAGIC) and len(data) > 24:
            self.replies += 1
            if self.replies > after:
                if mode == "crash":
                    os._exit(3)
                if mode == "hang":
                    time.sleep(3600)
                data = b"JUNK" + data[4:]
        return self.buffer.write(data)

    def flush(self) -> None:
        self.buffer.flush()


if not os.path.exists(marker):
    open(marker, "w").close()
    sys.stdout = type("Out", (), {"buffer": FaultyStdout(sys.stdout.buffer)})()
cartpole_sim.main()
