#!/usr/bin/env bash
# The GPU figures still to be measured, as one prepared command for a lent H100/H200 with no
# network (docs/gpu.md): the fixed-shape decode path (--compile-decode) against today's.
#
#   bash benchmarks/gpu_checks.sh wheels   # here, with the package index: the wheels the GPU
#                                          # image lacks, into .whl/ (ignored by git)
#   bash benchmarks/gpu_checks.sh run      # there (carry .whl): install them, run the engine's
#                                          # fixed-shape tests and the two benchmarks, copy the
#                                          # results to $OUT (or benchmarks/results/ alone)
#
# The image holds torch, transformers, jinja2, pyyaml, numpy and tqdm for Python 3.12; selfalign
# also needs pydantic and, for grammar rows, xgrammar. About 3 minutes on an H100 after start-up.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2)

wheels() {
    exclude=$(git rev-parse --git-path info/exclude)
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
    rm -rf .whl && mkdir .whl
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
    du -sh .whl
}

run() {
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
    python3 -m pytest -q -p no:cacheprovider tests/llm/test_static_decode.py
    python3 benchmarks/decode_attention.py --compile-decode graphs --batches 1 8 32
    python3 benchmarks/hf_batching.py --config-size qwen2-0.5b --dtype bfloat16 --device cuda -n 32 \
        --max-tokens 128 --greedy --no-sequential --compile-decode graphs
    if [ -n "${OUT:-}" ]; then cp benchmarks/results/compile_decode.json "$OUT/"; fi
}

case "${1:-}" in
    wheels) wheels ;;
    run) run ;;
    *) echo "usage: bash benchmarks/gpu_checks.sh wheels|run" >&2; exit 2 ;;
esac
