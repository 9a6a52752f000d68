#!/usr/bin/env bash
# The GPU run of issue 12, in two steps (see bench/bench_gpu.py for what is measured):
#
#   bench/gpu.sh wheels    here, with the package registry: the wheels the device lacks, for its Python 3.12
#   bench/gpu.sh run       on the device machine (torch, timm, accelerate, pyarrow there; no network):
#                          installs the project and those wheels, then runs bench/bench_gpu.py "$@"
#
# The device has torch, timm, accelerate and pyarrow but not datasets or evaluate; focus-eval needs
# datasets (and its dependencies) only, as the metric's arithmetic does not import evaluate. The wheels
# (about 21 MB, checked to resolve with the device's numpy and pyarrow, which must be >= 24) fit the
# device tool's 64 MiB carry: `carry: ["bench/wheels"]`.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=bench/wheels
step=${1:-run}
shift || true

case "$step" in
  wheels)
    rm -rf "$WHEELS"
    # Only binary wheels for the device's Python, and not torch, numpy or pyarrow (the device has them and
    # they would not fit the carry): datasets and what it and huggingface_hub need, each pinned no further.
    python3 -m pip download --quiet --dest "$WHEELS" --only-binary=:all: --python-version 3.12 \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
      --no-deps datasets dill multiprocess xxhash fsspec huggingface_hub hf-xet pandas pytz tzdata \
      python-dateutil six pyyaml tqdm filelock packaging typing_extensions click httpx2 httpcore2 anyio h11 \
      idna truststore certifi
    du -sh "$WHEELS"
    ;;
  run)
    # pip resolves datasets' requirements against what the device has and takes only what is missing or
    # too old from the wheels (never the network); a requirement neither can meet stops here, named.
    if [ -d "$WHEELS" ]; then
      python3 -m pip install --quiet --no-index --find-links "$WHEELS" datasets
    fi
    python3 -m pip install --quiet --no-deps --no-build-isolation -e .
    python3 -m pip check || echo "pip check: see above (packages the benchmark does not import may be listed)"
    python3 -c "import datasets, timm, torch, accelerate; print('torch', torch.__version__, 'datasets', \
datasets.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())"
    python3 bench/bench_gpu.py "$@"
    ;;
  *)
    echo "usage: bench/gpu.sh wheels | run [bench_gpu.py options]" >&2
    exit 2
    ;;
esac
