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
timeout 300 python -m pytest -m cuda -q -p no:cacheprovider || status=1
echo "== learner benchmark (CUDA, batch 65536)"
timeout 90 python -m experiments.bench_learner --batch 65536 --device cuda --repeats 10 || status=1
timeout 60 python -m experiments.bench_learner --batch 65536 --device cuda --repeats 10 --json || status=1
exit $status
