#!/usr/bin/env bash
# One short GPU session for favor.torch (about 4-5 minutes on an H100/H200-class GPU):
#   1. the CUDA tests (tests/favor/test_torch_gpu.py) when pytest is installed;
#   2. the GPU benchmark with a 200 s global deadline (bf16 cases, then the memory sweep, then float32).
# Everything lands in $OUT (default: ./gpu_out): gpu_tests.txt, torch_attention_gpu.json, gpu_bench.txt.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.txt" 2>&1
if python -c "import pytest" 2>/dev/null; then
    timeout 90 python -m pytest tests/favor/test_torch_gpu.py -q -p no:cacheprovider \
        > "$OUT/gpu_tests.txt" 2>&1
    echo "gpu tests rc=$?" | tee -a "$OUT/gpu_tests.txt"
else
    echo "pytest not installed: GPU tests skipped" | tee "$OUT/gpu_tests.txt"
fi
timeout 260 python benchmarks/torch_attention.py --mode gpu --deadline "${DEADLINE:-200}" \
    --out "$OUT/torch_attention_gpu.json" 2>&1 | tee "$OUT/gpu_bench.txt" | tail -40
echo "benchmark rc=${PIPESTATUS[0]}"
