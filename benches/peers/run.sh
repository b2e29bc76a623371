#!/usr/bin/env bash
# The vector-index comparison in one command: Mira's HNSW (mira-bench ann) and FAISS / hnswlib
# (benches/peers/ann.py), and LanceDB hybrid search (benches/peers/hybrid.py), on the same
# vectors, texts, queries and ground truth, in one run.
#   benches/peers/run.sh [DOCS] [DIM]      (default 100000 512)
# Python packages go to a venv outside the repository ($MIRA_PEERS_VENV, default
# /tmp/mira-peers-venv).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
docs="${1:-100000}"
dim="${2:-512}"
venv="${MIRA_PEERS_VENV:-/tmp/mira-peers-venv}"
work="${MIRA_PEERS_DIR:-/tmp/mira-peers-$docs}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q numpy faiss-cpu==1.15.1 hnswlib==0.8.0 lancedb==0.40.0 pyarrow pandas
fi
rm -rf "$work"
(cd "$root" && cargo run --release -p mira-bench -- ann --docs "$docs" --dim "$dim" --queries 1000 --dir "$work")
"$venv/bin/python" "$here/ann.py" "$work/ann-data"
"$venv/bin/python" "$here/hybrid.py" "$work/ann-data"
