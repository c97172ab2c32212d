#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Device check (a machine with a real NVIDIA GPU): NVML discovery and sampling through the real driver, under a
# real CUDA load, the nvidia-smi fallback, and — when the machine's Python has moto — a whole `mayfly run` with a
# GPU experiment. Needs build/mayfly, build/device/burn and build/devlibs (tests/device/prepare.sh makes them).
set -u
cd "$(dirname "$0")/../.."
export LD_LIBRARY_PATH="$PWD/build/devlibs"
OUT=${OUT:-/tmp}
echo "== host"; uname -sr; head -2 /etc/os-release
echo "== nvidia-smi"; nvidia-smi --query-gpu=index,name,uuid,driver_version,memory.total,memory.used,utilization.gpu --format=csv,noheader,nounits
echo "== libraries mayfly cannot find"; ldd build/mayfly | grep "not found" || echo none
echo "== mayfly gpu (NVML via dlopen)"; ./build/mayfly gpu; echo "rc=$?"
echo "== idle samples"; ./build/mayfly gpu --watch 3
echo "== samples under a CUDA load"; ./build/device/burn 14 & b=$!; sleep 2; ./build/mayfly gpu --watch 9; wait $b; echo "burn rc=$?"
echo "== nvidia-smi fallback (NVML library made unavailable)"
MAYFLY_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1 ./build/mayfly gpu --watch 2; echo "rc=$?"
echo "== whole run with a GPU experiment"
if python3 -c 'import moto, boto3' 2>/dev/null; then
  python3 tests/device/gpu_job.py
else
  echo "skipped: this machine's python3 has no moto"
fi
