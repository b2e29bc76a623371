#!/usr/bin/env bash
# Mira on an NVIDIA GPU against PyTorch + transformers on the same weights, in one command, for a
# machine with a GPU, a CUDA 13 driver, python3 with torch and transformers, and no Rust:
#
#   scripts/gpu-check.sh [MIRA_BENCH]
#
# MIRA_BENCH: a mira-bench built with `--features cuda`, or its .xz (scripts/build-cuda.sh makes
# both under target/cuda/; the default is target/cuda/mira-bench, else its .xz). It finds the CUDA libraries it links
# (cudart, cuBLAS, NVRTC, cuRAND) in MIRA_CUDA_LIB, else in python3's NVIDIA wheels
# (site-packages/nvidia/cu13/lib, which PyTorch brings), else in /usr/local/cuda/lib64.
#
# Writes random-weight models in the real shapes (CLIP ViT-B/32, Qwen3-Reranker 0.6B and 8B, BLIP
# base) and checks, each in one run with transformers on the same files:
#   1. f32:  CLIP cosine >= 0.9999 (images from files, texts), reranker P(yes) within 1e-4 and
#            the same order, at 200 and 1000 tokens; BLIP's greedy captions the same token ids;
#   2. bf16: the same within 1e-2 (cosine 0.999);
#   3. the 8B in bf16: 100 candidates of 200 tokens (target < 0.5 s), and of 1000 tokens.
# and prints throughput for both sides (images/s, texts/s, pairs/s, captions/s). Exits 1 on a
# mismatch.
# Work files go to MIRA_GPU_WORK (default /tmp/mira-gpu-check; about 20 GB with the 8B).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
bin="${1:-$root/target/cuda/mira-bench}"
py="${PYTHON:-python3}"
work="${MIRA_GPU_WORK:-/tmp/mira-gpu-check}"
peers="$root/benches/peers/models.py"

if [ ! -e "$bin" ] && [ -e "$bin.xz" ]; then bin="$bin.xz"; fi
if [ "${bin%.xz}" != "$bin" ]; then
  # Unpack the compressed binary (xz, or Python's lzma where there is no xz).
  mkdir -p "$work"
  out="$work/mira-bench"
  if command -v xz >/dev/null; then xz -dc "$bin" > "$out"; else
    "$py" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$bin" "$out"
  fi
  chmod +x "$out"
  bin="$out"
fi
[ -x "$bin" ] || { echo "gpu-check: no mira-bench at $bin (build it with scripts/build-cuda.sh)" >&2; exit 2; }
lib="${MIRA_CUDA_LIB:-}"
if [ -z "$lib" ]; then
  lib=$("$py" - <<'EOF' 2>/dev/null || true
import glob, os, site
for base in site.getsitepackages():
    for d in glob.glob(os.path.join(base, "nvidia", "cu13", "lib")):
        if glob.glob(os.path.join(d, "libcublas.so.*")):
            print(d); raise SystemExit
EOF
)
fi
[ -n "$lib" ] || lib=/usr/local/cuda/lib64
for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libnvrtc.so.13 libcurand.so.10; do
  [ -e "$lib/$so" ] || { echo "gpu-check: $so not in $lib (set MIRA_CUDA_LIB)" >&2; exit 2; }
done
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$py" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name(0))'
if ldd "$bin" | grep -q "not found"; then
  ldd "$bin" | grep "not found" >&2
  exit 2
fi

status=0
step() {
  local name="$1"; shift
  echo "== $name"
  rm -f "$work/$name/mira.json" "$work/$name/torch.json"
  local started=$SECONDS
  "$bin" model-peers --dir "$work/$name" --device cuda:0 "$@" || { status=1; return; }
  "$py" "$peers" "$work/$name" --check || status=1
  echo "   ($((SECONDS - started)) s)"
}
mkdir -p "$work"
# Batches sized for the GPU: CLIP 256 images / texts per pass, the 0.6B 64 prompts.
step f32 --dtype f32 --reranker 0.6b --tokens 200,1000 --pairs 128 --rerank-batch 64 \
  --images 1024 --texts 2048 --clip-batch 256 --captions 64
step bf16 --dtype bf16 --reranker 0.6b --tokens 200,1000 --pairs 128 --rerank-batch 64 \
  --images 1024 --texts 2048 --clip-batch 256 --captions 64
step 8b-bf16 --dtype bf16 --reranker 8b --skip-clip --tokens 200,1000 --pairs 100 --rerank-batch 100
[ "${MIRA_GPU_KEEP:-0}" = 1 ] || rm -rf "$work"
exit $status
