"""A real TensorBoard server on a KS run dir: the HPARAMS table, the picture of the physics and
the Custom Scalars layout, read over HTTP as the browser reads them."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import only_run_dir

KS_SMALL = {
    "name": "ks-small",
    "env": {"id": "rlfarm/KuramotoSivashinsky-v0", "envs_per_runner": 4,
            "kwargs": {"num_actuators": 4, "num_sensors": 8}},
    "model": {"hidden_sizes": [16, 16]},
    "algo": {"name": "appo", "epochs": 1, "minibatches": 2, "device": "cpu"},
    "farm": {"mode": "serial", "num_runners": 1, "fragment_length": 20},
    "stop": {"env_steps": 800},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tensorboard_command() -> list[str]:
    exe = shutil.which("tensorboard")
    return [exe] if exe else [sys.executable, "-m", "tensorboard.main"]


class Server:
    """`tensorboard --logdir DIR --port PORT --host 127.0.0.1`, waited for until it answers."""

    def __init__(self, logdir: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        self.proc = subprocess.Popen([*tensorboard_command(), "--logdir", str(logdir), "--port", port,
                                      "--host", "127.0.0.1", "--reload_interval", "1"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                self.get("/data/runs")
                return
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read().decode()
                time.sleep(0.5)
        raise AssertionError("tensorboard did not answer in 90 s")

    def get(self, path: str, body: dict | None = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={
            "Content-Type": "application/json", "X-TensorBoard-Feature-Flags": "{}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def json(self, path: str, body: dict | None = None) -> object:
        return json.loads(self.get(path, body))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def until(check, timeout: float = 60.0):
    """check() until it returns something truthy (TensorBoard loads event files in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


@pytest.fixture
def ks_run(write_config, runs_dir, train) -> Path:
    assert train(write_config(KS_SMALL)) == 0
    return only_run_dir(runs_dir)


@pytest.mark.slow
def test_tensorboard_serves_hparams_pictures_and_the_layout(ks_run, runs_dir):
    server = Server(runs_dir)
    try:
        run = ks_run.name
        experiment = until(lambda: server.json("/data/plugin/hparams/experiment", {"experimentName": ""})
                           .get("hparamInfos"))
        names = {info["name"] for info in experiment}
        assert {"env", "algo", "lr", "runners", "envs_per_runner", "seed", "farm_mode"} <= names
        metrics = server.json("/data/plugin/hparams/experiment", {"experimentName": ""})["metricInfos"]
        assert {m["name"]["tag"] for m in metrics} >= {"final/return", "final/env_steps_per_s",
                                                      "final/solved", "final/wall_s"}
        groups = server.json("/data/plugin/hparams/session_groups", {
            "experimentName": "", "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN"],
            "colParams": [], "startIndex": 0, "sliceSize": 10})
        session = groups["sessionGroups"][0]
        assert session["hparams"]["env"] == "rlfarm/KuramotoSivashinsky-v0"
        assert session["hparams"]["algo"] == "appo" and session["hparams"]["farm_mode"] == "serial"

        tags = until(lambda: server.json("/data/plugin/images/tags").get(run, {}))
        assert "physics/episode" in tags
        images = server.json(f"/data/plugin/images/images?run={run}&tag=physics/episode&sample=0")
        png = server.get(f"/data/plugin/images/individualImage?{images[-1]['query']}")
        assert png.startswith(b"\x89PNG")

        layout = server.json("/data/plugin/custom_scalars/layout")
        titles = [category["title"] for category in layout["category"]]
        assert titles[:2] == ["Is it learning?", "Is the farm healthy?"]
        charts = layout["category"][0]["chart"]
        assert charts[0]["multiline"]["tag"] == ["charts/episode_return_mean"]
    finally:
        server.close()
