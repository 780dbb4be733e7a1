"""Screenshots of TensorBoard for docs/monitoring.md, taken with headless Chromium.

    python experiments/tools/screenshots.py RUNS_DIR OUT_DIR PREFIX

starts `tensorboard --logdir RUNS_DIR` on a free loopback port and writes
OUT_DIR/PREFIX-{scalars,custom,hparams,images}.png. Needs `chromium` (Debian: apt-get install
chromium); tests/experiments/test_screenshots.py re-takes them where it is installed.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

PAGES = {"scalars": "?forceSVG=true#timeseries", "custom": "#custom_scalars", "hparams": "#hparams",
         "images": "#images"}
"""URL tails of the pages shot. forceSVG: TensorBoard's line charts draw with WebGL, which a
headless browser without a GPU renders for some cards and not others; its SVG renderer draws
every card."""
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1400,1000", "--virtual-time-budget=20000")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def take(runs_dir: str, out_dir: str, prefix: str) -> list[str]:
    """The pages' screenshots; paths of the PNG files written."""
    browser = chromium()
    if browser is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium)")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", runs_dir,
                               "--port", str(port), "--host", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    paths = []
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(url + "data/runs", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("tensorboard did not start") from None
                time.sleep(0.5)
        time.sleep(3)  # the first load of the event files
        os.makedirs(out_dir, exist_ok=True)
        for name, fragment in PAGES.items():
            path = os.path.join(out_dir, f"{prefix}-{name}.png")
            with tempfile.TemporaryDirectory() as profile:
                subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                f"--screenshot={path}", url + fragment],
                               check=True, timeout=120, capture_output=True)
            paths.append(path)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return paths


if __name__ == "__main__":
    for written in take(*sys.argv[1:4]):
        print(written)
