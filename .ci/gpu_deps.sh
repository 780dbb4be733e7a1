#!/usr/bin/env bash
# Pack what experiments/gpu_check.sh needs and a GPU machine without network lacks, into
# .gpu_deps/. Run it where PyPI is reachable, then bring .gpu_deps along to that machine:
#   bash .ci/gpu_deps.sh
#   there: bash experiments/gpu_check.sh
# The GPU machines' image has Python 3.12, CUDA torch, numpy, tensorboard, pyyaml and
# matplotlib, but no Ray and no gymnasium, and nothing can be fetched there. Ray's wheel
# (79 MB) is over the 64 MiB a call may carry; without its Java jars and the dashboard's web
# UI (neither used by an embedded Ray with the dashboard off) the packed folder is ~45 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
py_version=${GPU_PYTHON_VERSION:-3.12}
ray_version=$(python3 -c "import ray; print(ray.__version__)")
gym_version=$(python3 -c "import gymnasium; print(gymnasium.__version__)")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
# ray and gymnasium, with their dependencies the image lacks (the rest are there).
python3 -m pip install -q --no-deps --only-binary=:all: --python-version "$py_version" \
  --implementation cp "${platforms[@]}" --target "$work/site" \
  "ray==$ray_version" "gymnasium==$gym_version" farama-notifications \
  jsonschema jsonschema-specifications referencing rpds-py
rm -rf "$work/site/ray/jars" "$work/site/ray/dashboard/client/build" "$work/site/bin"
mkdir -p .gpu_deps
XZ_OPT=-T0 tar -cJf .gpu_deps/site.tar.xz -C "$work/site" .
echo "packed ray $ray_version and gymnasium $gym_version for Python $py_version:" \
     "$(du -h .gpu_deps/site.tar.xz | cut -f1) in .gpu_deps/site.tar.xz"
