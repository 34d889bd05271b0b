#!/bin/bash
# make-bundle.sh — build a Release tree for sm_90 in build-gpu and pack everything
# tests/gpu/run.sh needs into .gpu/ (binaries, the shared libraries the GPU host lacks, the golden
# files, run.sh). The GPU host (Ubuntu 24.04, its own CUDA 13 + cuBLAS, no ../shared) runs:
#     cd .gpu && LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64 ./run.sh $OUT/logs
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${WV_SHARED_DIR:-$root/../shared}
build=$root/build-gpu
out=$root/.gpu
jobs=${JOBS:-2}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DWSI_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DWV_SHARED_DIR="$shared" >/dev/null
bins="src/wsi-vmamba tests/gpu/test_gpu_ops tests/gpu/test_gpu_scan tests/gpu/test_gpu_model tests/gpu/test_gpu_head tests/gpu/gpu_check tests/bench/gpu_bench"
cmake --build "$build" -j"$jobs" --target wsi-vmamba test_gpu_ops test_gpu_scan test_gpu_model test_gpu_head gpu_check gpu_bench
rm -rf "$out"
mkdir -p "$out/golden"
for b in $bins; do
  bash "$shared/scripts/bundle-libs.sh" "$build/$b" "$out" >/dev/null
done
# golden: the v2_ds1 model (safetensors), its inputs / logits / stage maps, the scan cases
cp "$shared/golden/manifest.json" "$shared"/golden/v2_ds1_*.bin "$shared/golden/v2_ds1_weights.safetensors" \
   "$shared"/golden/scan_*.bin "$out/golden/"
# lib/ is ~60 MB (OpenBLAS alone 36 MB): ship it gzipped; run.sh unpacks it on first use
# (before any binary starts, so LD_LIBRARY_PATH=$PWD/lib finds it).
tar -czf "$out/lib.tar.gz" -C "$out" lib
rm -rf "$out/lib"
cp "$root/tests/gpu/run.sh" "$out/"
chmod +x "$out/run.sh"
size=$(du -sm "$out" | cut -f1)
echo "bundle: $out (${size} MB)"
if [ "$size" -ge 60 ]; then echo "make-bundle: bundle is ${size} MB, over the 60 MB budget" >&2; exit 1; fi
