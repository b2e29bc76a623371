#!/usr/bin/env bash
# CLIP and Qwen3-Reranker against PyTorch + transformers on the same random-weight models (the
# real shapes), the same inputs and threads, in one run:
#   benches/peers/models.sh [ARGS FOR mira-bench model-peers...]
#   e.g. benches/peers/models.sh --dtype q8 --skip-clip
# Python packages go to a venv outside the repository ($MIRA_TORCH_VENV, default
# /tmp/mira-torch-venv); the models stay in $MIRA_PEERS_MODELS (default /tmp/mira-peers-models)
# between runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${MIRA_TORCH_VENV:-/tmp/mira-torch-venv}"
work="${MIRA_PEERS_MODELS:-/tmp/mira-peers-models}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, transformers' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "torch==2.11.0" "transformers==5.17.0" safetensors pillow numpy
fi
(cd "$root" && cargo build --release -p mira-bench)
rm -f "$work/mira.json" "$work/torch.json"
"$root/target/release/mira-bench" model-peers --dir "$work" "$@"
"$venv/bin/python" "$here/models.py" "$work" --check
