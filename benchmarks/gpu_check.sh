#!/usr/bin/env bash
# The GPU check a session runs when it is lent a CUDA machine (the project's CI has none):
# the CUDA tests, then the engine-vs-bare overhead benchmark on the GPU. Runs with whatever
# torch the machine has, from the source tree (no install). Logs go to ${OUT:-gpu-out}/.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$OUT/gpu.txt"
timeout 300 $PY -m pytest -q -p no:cacheprovider --timeout 250 tests/test_cuda.py \
    tests/test_zero_cost.py -k "cuda" 2>&1 | tee "$OUT/cuda_tests.log"
# zero-cost proxies on the GPU vs the CPU, with and without TF32 (the CUDA test compares them at 5%)
timeout 120 $PY benchmarks/zero_cost_devices.py 2>&1 | tee "$OUT/zero_cost_devices.log"
for cfg in "--data digits --n-train 1150 --C 16 --N 5 --epochs 3" \
           "--data synthetic-cifar10 --n-train 5000 --C 16 --N 5 --epochs 2" \
           "--data synthetic-cifar10 --n-train 5000 --C 8 --N 1 --epochs 2"; do
    tag=$(echo "$cfg" | tr -d ' -' | tr -c 'A-Za-z0-9\n' '_')
    timeout 150 $PY benchmarks/overhead.py $cfg --device cuda --repeats 3 --json "$OUT/overhead_$tag.json" \
        2>&1 | tail -3 | tee -a "$OUT/overhead.log"
done
# several candidates at once on the GPU (the CIFAR-10 subset must be reachable: SHARED=path/to/shared/data)
timeout 420 $PY benchmarks/gpu_throughput.py --data-root "${SHARED:-../shared/data}" \
    --json "$OUT/gpu_throughput.json" 2>&1 | tee "$OUT/gpu_throughput.log"
