#!/usr/bin/env bash
# The one script to run on a lent GPU machine (finishes within 8 minutes):
#   1. the CUDA-marked tests;
#   2. the learner's samples/s on CUDA for the default MLP at batch 65536 (goal: >= 5M/s).
# Later sections (e.g. the Ray farm's GPU checks) may be appended below.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
echo "== nvidia-smi"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
echo "== pytest -m cuda"
timeout 240 python -m pytest -m cuda -q -p no:cacheprovider || status=1
echo "== learner benchmark (CUDA, batch 65536)"
timeout 60 python -m experiments.bench_learner --batch 65536 --device cuda --repeats 20 || status=1
timeout 45 python -m experiments.bench_learner --batch 65536 --device cuda --repeats 5 --json || status=1
# ---- appended by the Ray farm (cluster/ray_farm.py): runner scaling with the learner on the GPU.
# Sampling through the farm (policy inference in the runners, every fragment delivered to the
# learner actor on the GPU and copied to the device), 1024 CartPole envs per runner.
echo "== Ray farm: runner scaling 1,2,4,8,14 (learner on the GPU), env steps/s"
for runners in 1 2 4 8 14; do
  timeout 60 rlfarm bench --farm experiments/configs/bench_farm.yaml --seconds 6 --json \
    --set farm.num_runners=$runners --set farm.learner_resources.num_gpus=1 \
    --set algo.device=cuda 2>/dev/null | tail -n 1 \
    | python -c "import json,sys; r=json.load(sys.stdin); print(f'runners={r[\"num_runners\"]:2d}  {r[\"rlfarm\"][\"env_steps_per_s\"]/1e6:7.3f} M env steps/s')" \
    || { echo "runners=$runners: failed"; status=1; }
done
exit $status
