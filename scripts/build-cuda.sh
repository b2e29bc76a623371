#!/usr/bin/env bash
# Builds Mira with `--features cuda` from NVIDIA's PyPI wheels alone (scripts/cuda-toolchain.sh
# installs them), for compute capability CUDA_COMPUTE_CAP (default 90: H100/H200; docs/gpu.md):
#
#   scripts/build-cuda.sh            # target/cuda/mira and target/cuda/mira-bench (stripped; .xz too)
#   scripts/build-cuda.sh --check    # compile and lint only (clippy -D warnings; CI does not run it)
#
# The binaries load the CUDA runtime, cuBLAS, NVRTC and cuRAND at start from LD_LIBRARY_PATH
# (a CUDA 13 install's lib64, or python's site-packages/nvidia/cu13/lib) and the driver
# (libcuda.so.1) from the system. Cargo's output goes to target/cuda (apart from the CPU build's).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
toolchain_env="$("$root/scripts/cuda-toolchain.sh")" # (an assignment: a failure stops here)
eval "$toolchain_env"
cd "$root"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$CARGO_BUILD_JOBS}"
if [ "${1:-}" = "--check" ]; then
  cargo clippy --release --features cuda -p mira -p mira-host -p mira-bench --locked \
    --target-dir target/cuda -- -D warnings
  exit
fi
cargo build --release --features cuda -p mira -p mira-bench --target-dir target/cuda
for bin in mira mira-bench; do
  strip -o "target/cuda/$bin" "target/cuda/release/$bin"
  echo "target/cuda/$bin: $(du -h "target/cuda/$bin" | cut -f1)"
done
# What travels to a GPU machine: candle's kernels make the stripped mira-bench ~100 MB (PTX text
# and Hopper machine code), 19 MB in xz; scripts/gpu-check.sh unpacks it.
xz -T0 -6 -c target/cuda/mira-bench > target/cuda/mira-bench.xz
echo "target/cuda/mira-bench.xz: $(du -h target/cuda/mira-bench.xz | cut -f1)"
