#!/usr/bin/env bash
# The GPU run of issue 12, in two steps (see bench/bench_gpu.py for what is measured):
#
#   bench/gpu.sh wheels    here, with the package registry: the wheels the device lacks, for its Python 3.12
#   bench/gpu.sh run       on the device machine (torch, timm, accelerate, pyarrow there; no network):
#                          installs the project and those wheels, then runs bench/bench_gpu.py "$@"
#
# The device has torch, timm, accelerate and pyarrow but not datasets or evaluate; focus-eval needs
# datasets (and its dependencies) only, as the metric's arithmetic does not import evaluate. The wheels
# (about 25 MB) fit the device tool's 64 MiB carry: `carry: ["bench/wheels"]`.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=bench/wheels
step=${1:-run}
shift || true

case "$step" in
  wheels)
    rm -rf "$WHEELS"
    # Only binary wheels for the device's Python; the packages it has already are not fetched.
    python3 -m pip download --quiet --dest "$WHEELS" --only-binary=:all: --python-version 3.12 \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
      --no-deps datasets dill multiprocess xxhash fsspec huggingface_hub hf-xet pandas pytz tzdata \
      python-dateutil six pyyaml tqdm
    du -sh "$WHEELS"
    ;;
  run)
    if [ -d "$WHEELS" ]; then
      python3 -m pip install --quiet --no-index --find-links "$WHEELS" --no-deps "$WHEELS"/*.whl
    fi
    python3 -m pip install --quiet --no-deps --no-build-isolation -e .
    python3 -c "import datasets, timm, torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    python3 bench/bench_gpu.py "$@"
    ;;
  *)
    echo "usage: bench/gpu.sh wheels | run [bench_gpu.py options]" >&2
    exit 2
    ;;
esac
