#!/usr/bin/env bash
# The checks to run on a machine with a CUDA GPU, from a checkout:
#   1. the CUDA-marked tests;
#   2. the learner's samples/s on CUDA for the default MLP at batch 65536,
#      with the minibatch step as a CUDA graph and eagerly;
#   3. the Ray farm's weak scaling, 1-14 runners in interleaved rounds, learner on the GPU;
#   4. the README demo's training, with its learner on the GPU.
# Where rlfarm and its dependencies are installed, it runs as it is. For a machine that has
# CUDA torch but no Ray or gymnasium and no network, .ci/gpu_deps.sh packs those into
# .gpu_deps/, which this script unpacks when the folder is there.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import ray, gymnasium" 2>/dev/null; then
  if [ ! -f .gpu_deps/site.tar.xz ]; then
    echo "gpu_check: $PY has no ray/gymnasium; run .ci/gpu_deps.sh first and bring .gpu_deps along" >&2
    exit 2
  fi
  # Python's own tarfile: the image may have no xz program.
  "$PY" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='fully_trusted')" \
    .gpu_deps/site.tar.xz /tmp/rlfarm-site || exit 2
  export PYTHONPATH=/tmp/rlfarm-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # rlfarm's packages, here and in Ray's workers
RLFARM=("$PY" -m rlfarm.experiments.cli)
status=0
echo "== nvidia-smi"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -c "import sys, torch, ray, gymnasium; print('python', sys.version.split()[0], 'torch', torch.__version__, 'ray', ray.__version__, 'gymnasium', gymnasium.__version__, 'cuda', torch.cuda.is_available())" || status=1
echo "== pytest -m cuda"
# Collection errors elsewhere (a module the image lacks) must not stop the CUDA tests.
timeout 240 "$PY" -m pytest -m cuda -q -p no:cacheprovider --continue-on-collection-errors || status=1
results=${OUT:-/tmp}  # the device tool brings $OUT back: the whole JSON of each benchmark
echo "== learner benchmark (CUDA, batch 65536): CUDA graphs (the default), then eager"
timeout 60 "$PY" -m rlfarm.experiments.bench.learner --batch 65536 --device cuda --repeats 20 || status=1
timeout 60 "$PY" -m rlfarm.experiments.bench.learner --batch 65536 --device cuda --repeats 20 --eager || status=1
timeout 45 "$PY" -m rlfarm.experiments.bench.learner --batch 65536 --device cuda --repeats 5 --json \
  >"$results/learner.json" || status=1
# Weak scaling through the farm (policy inference in the runners, every fragment delivered to
# the learner actor on the GPU and copied to the device), 1024 CartPole envs per runner. The
# runner counts take turns, round after round, so the machine's drift hits them all alike.
echo "== Ray farm: weak scaling, 1,2,4,8,14 runners (learner on the GPU), 2 rounds"
timeout 300 "${RLFARM[@]}" bench --farm experiments/configs/bench_farm.yaml --seconds 5 \
  --runners 1,2,4,8,14 --repeat 2 --set farm.learner_resources.num_gpus=1 --set algo.device=cuda \
  2>/tmp/rlfarm-bench.err | tee "$results/farm_scaling.txt" \
  || { echo "weak scaling failed:"; tail -n 5 /tmp/rlfarm-bench.err; status=1; }
# End to end: the README demo with its learner actor on the GPU (Ray's start included).
echo "== rlfarm train cartpole_ppo.yaml, learner on the GPU"
start_ns=$(date +%s%N)
timeout 90 "${RLFARM[@]}" train experiments/configs/cartpole_ppo.yaml --set log.dir=/tmp/rlfarm-runs \
  --set farm.learner_resources.num_gpus=1 --set algo.device=cuda 2>&1 | grep -E "^rlfarm|Error|error" \
  || status=1
echo "whole process: $(( ($(date +%s%N) - start_ns) / 1000000 )) ms"
echo "== that run's GPU tags in TensorBoard"
"$PY" - <<'PYEOF' || status=1
import glob
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
events = EventAccumulator(sorted(glob.glob("/tmp/rlfarm-runs/*/"))[-1])
events.Reload()
for tag in ("system/gpu_mem_gb", "system/gpu_joules_per_million_steps", "perf/learner_update_ms"):
    values = [event.value for event in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []
    print(f"{tag}: " + (f"last {values[-1]:.4g} ({len(values)} points)" if values else "not written"))
PYEOF
exit $status
