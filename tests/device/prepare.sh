#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds what tests/device/check.sh carries to the GPU machine: the CUDA load and the shared libraries mayfly
# links (the device image may lack the -dev packages' runtime libraries).
set -eu
cd "$(dirname "$0")/../.."
make
mkdir -p build/device build/devlibs
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
"$nvcc" -O2 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
  -gencode arch=compute_90,code=compute_90 -o build/device/burn tests/device/burn.cu
ldd build/mayfly | awk '/=> \// {print $3}' | grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" build/devlibs/; done
du -sh build/devlibs build/device build/mayfly
