"""A 2-D box-action simulator for the bridge's tests: the observation is the action it was
last given (obs_dim 2, action_dim 2), so a test sees what reached the program."""
import struct
import sys

stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
stdout.write(b"RLFM" + struct.pack("<5I", 1, 2, 1, 2, 1))
stdout.flush()
copies = 0
while True:
    header = stdin.read(5)
    if len(header) < 5:
        sys.exit(0)
    op, count = struct.unpack("<cI", header)
    if op == b"N":
        copies = count
        continue
    if op == b"R":
        stdin.read(4 * count + 8 * count)
        stdout.write(b"RLFM" + struct.pack(f"<{2 * count}f", *[0.0] * (2 * count)))
    elif op == b"S":
        actions = struct.unpack(f"<{2 * copies}f", stdin.read(8 * copies))
        stdout.write(b"RLFM" + struct.pack(f"<{2 * copies}f", *actions)
                     + struct.pack(f"<{copies}f", *[0.0] * copies) + bytes(copies))
    else:
        sys.exit(0)
    stdout.flush()
