"""Network cost of the farm on the test hosts (docs/results/scaling-model.md has the results).

    python .ci/netcost.py OUT_DIR [--seconds 10]

Needs `bash .ci/hosts.sh up` (root). Starts Ray in the hosts (head on gpu1 with `gpu_node`,
workers on cpu1 and cpu2 with `cpu_node` and the `rf_nodes_N` resources of `rlfarm scale`'s
node axis), then for each link shaping (none, 1 ms / 10 Gbit, 5 ms / 1 Gbit) measures, inside
gpu1, every point of `rlfarm scale`'s sweep (runners on 1 or 2 CPU hosts, two fragment sizes):
env steps/s, and the CPU seconds per fragment of Ray's own processes (every host's raylet and
GCS: the hosts share the machine's PID space) and of the driver. Writes OUT_DIR/netcost.csv.
Only this script's Ray processes are stopped at the end; the shaping is removed.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOSTS_SH = REPO / ".ci" / "hosts.sh"
HOSTS = {"gpu1": "198.18.0.1", "cpu1": "198.18.0.2", "cpu2": "198.18.0.3"}
PORT = 6395
SHAPES = [("none", None), ("1ms/10gbit", ("1ms", "10gbit")), ("5ms/1gbit", ("5ms", "1gbit"))]
"""(name, (DELAY, RATE) for `hosts.sh shape`)."""
FRAGMENTS = [(32, 16), (256, 64)]  # (envs per runner, fragment length)
CONFIG = """\
name: netcost
env: {{id: rlfarm/CartPole-v1, envs_per_runner: {envs}}}
algo: {{epochs: 1, minibatches: 1, device: cpu}}
farm: {{mode: ray, num_runners: 2, fragment_length: {length}, address: "{address}",
        runner_resources: {{num_cpus: 1, resources: {{cpu_node: 1}}}},
        learner_resources: {{num_cpus: 1, resources: {{gpu_node: 1}}}}}}
stop: {{env_steps: 1000000000}}
log: {{dir: {out}}}
sweep: {{num_runners: [2], nodes: [1, 2], seconds: {seconds}, warmup_iterations: 3}}
"""


def shape(delay_rate: tuple[str, str] | None) -> str:
    """Shape every host's link; returns what was applied. Without sch_netem in the kernel
    (`hosts.sh shape` then fails) the rate alone is applied with tbf, and the delay is not."""
    if delay_rate is None:
        subprocess.run(["bash", str(HOSTS_SH), "shape", "off"], check=True)
        return "none"
    if subprocess.run(["bash", str(HOSTS_SH), "shape", *delay_rate]).returncode == 0:
        return "/".join(delay_rate)
    subprocess.run(["bash", str(HOSTS_SH), "shape", "off"], check=True)
    rate = delay_rate[1]
    bits = float(rate.rstrip("gbit").rstrip("m")) * (1e9 if rate.endswith("gbit") else 1e6)
    burst = max(int(bits / 8 / 250), 32768)  # a 4 ms burst: tbf needs at least rate / HZ
    for host in HOSTS:
        subprocess.run(["ip", "netns", "exec", host, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
                        "rate", rate, "burst", str(burst), "latency", "50ms"], check=True)
    return f"{rate} (tbf; no netem: delay not applied)"


def ray_system_cpu_s() -> float:
    """CPU seconds (user + system) of this script's raylets and GCS (their command lines name
    the hosts' temp dirs, /tmp/rf-nc-HOST; other Ray clusters on the machine are left out)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            ours = b"/tmp/rf-nc-" in (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        if ours and name in ("raylet", "gcs_server"):
            fields = text[text.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measure(config: str, seconds: float) -> list[dict]:
    """Inside gpu1: every point of the config's sweep, with CPU per fragment."""
    from rlfarm import cluster
    from rlfarm.experiments.bench import scale

    raw, sweep = scale.load_sweep(config, [])
    rows = []
    for point, cfg in scale.sweep_points(raw, sweep):
        farm = cluster.make_farm(cfg.env, cfg.model, cfg.algo, cfg.farm, cfg.seed, total_env_steps=None)
        try:
            for _ in range(sweep.warmup_iterations):
                farm.iterate()
            steps0, ray0, driver0, start = farm.env_steps, ray_system_cpu_s(), time.process_time(), time.perf_counter()
            while time.perf_counter() - start < seconds:
                farm.iterate()
            elapsed = time.perf_counter() - start
            steps, ray_s, driver_s = farm.env_steps - steps0, ray_system_cpu_s() - ray0, time.process_time() - driver0
        finally:
            farm.close()
        fragments = steps / (cfg.env.envs_per_runner * cfg.farm.fragment_length)
        rows.append({"nodes": point.nodes, "runners": point.num_runners, "envs_per_runner": cfg.env.envs_per_runner,
                     "fragment_length": cfg.farm.fragment_length, "env_steps_per_s": round(steps / elapsed),
                     "fragments_per_s": round(fragments / elapsed, 2),
                     "ray_cpu_ms_per_fragment": round(1000 * ray_s / fragments, 2),
                     "driver_cpu_ms_per_fragment": round(1000 * driver_s / fragments, 2)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def start_ray(env: dict, tmp: Path) -> list[subprocess.Popen]:
    from rlfarm.experiments.bench.scale import node_sweep_resources

    nodes = []
    for index, host in enumerate(HOSTS):
        if host == "gpu1":
            resources = {"gpu_node": 1}
        else:  # cpu1 is worker node 1, cpu2 node 2 of the node sweep
            resources = {"cpu_node": 2, **node_sweep_resources(index, [1, 2], slots=2)}
        command = ["bash", str(HOSTS_SH), "exec", host, "ray", "start", "--block", "--node-ip-address",
                   HOSTS[host], "--temp-dir", f"/tmp/rf-nc-{host}", "--disable-usage-stats",
                   "--num-cpus", "2", "--resources", json.dumps(resources)]
        command += (["--head", "--port", str(PORT), "--include-dashboard", "false"] if host == "gpu1"
                    else ["--address", f"{HOSTS['gpu1']}:{PORT}"])
        log = open(tmp / f"ray-{host}.log", "ab")
        nodes.append(subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True))
        time.sleep(8 if host == "gpu1" else 2)
    wait = ("import ray, sys, time; ray.init(address=sys.argv[1]); deadline = time.time() + 180\n"
            "while sum(n['Alive'] for n in ray.nodes()) < 3 and time.time() < deadline: time.sleep(1)\n"
            "sys.exit(sum(n['Alive'] for n in ray.nodes()) < 3)")
    subprocess.run(["bash", str(HOSTS_SH), "exec", "gpu1", sys.executable, "-c", wait, f"{HOSTS['gpu1']}:{PORT}"],
                   env=env, check=True, timeout=300)
    return nodes


def stop_ray(nodes: list[subprocess.Popen]) -> None:
    for popen in nodes:  # each `ray start --block` stops its own node's processes on SIGTERM
        popen.send_signal(signal.SIGTERM)
    for popen in nodes:
        try:
            popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--measure", metavar="CONFIG", help=argparse.SUPPRESS)  # inside gpu1
    args = parser.parse_args()
    out = Path(args.out).resolve()
    if args.measure:
        (out / "rows.json").write_text(json.dumps(measure(args.measure, args.seconds)))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    nodes = start_ray(env, out)
    rows = []
    try:
        for _, delay_rate in SHAPES:
            shape_name = shape(delay_rate)
            for envs, length in FRAGMENTS:
                config = out / f"netcost-{envs}x{length}.yaml"
                config.write_text(CONFIG.format(envs=envs, length=length, address=f"{HOSTS['gpu1']}:{PORT}",
                                                out=out / "runs", seconds=args.seconds))
                subprocess.run(["bash", str(HOSTS_SH), "exec", "gpu1", sys.executable, __file__, str(out),
                                "--seconds", str(args.seconds), "--measure", str(config)], env=env, check=True)
                rows += [{"shaping": shape_name, **row} for row in json.loads((out / "rows.json").read_text())]
    finally:
        subprocess.run(["bash", str(HOSTS_SH), "shape", "off"])
        stop_ray(nodes)
    with open(out / "netcost.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print((out / "netcost.csv").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
