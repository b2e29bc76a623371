#!/usr/bin/env bash
# Property-based tests of the HTTP API with Schemathesis, driven by /openapi.json, against a live
# `mira serve` on loopback with both API keys set: no 5xx, every response conforming to the
# document (status codes, content types, bodies), every schema-violating request refused.
# Bounded (MIRA_SCHEMATHESIS_SECS, default 120 s) and seeded, so a CI failure reproduces. One
# worker: with two, Python 3.11's `ast` module races (cpython#106905) inside Hypothesis and a run
# fails now and then with "AST constructor recursion depth mismatch", nothing to do with Mira.
#
#   scripts/schemathesis.sh [path/to/mira]     # default: target/debug/mira
#
# Excluded: `positive_data_acceptance` (the server checks what a schema cannot say: that a
# TOML schema is valid, that a search has something to search by, one of `ids`/`query`), the
# drops of collections and plugins (they would remove what the rest of the run tests), and the
# wasm upload (Schemathesis cannot generate `application/wasm`; tests/e2e covers it).
set -euo pipefail
cd "$(dirname "$0")/.."
MIRA="${1:-target/debug/mira}"
SECS="${MIRA_SCHEMATHESIS_SECS:-120}"
SEED="${MIRA_SCHEMATHESIS_SEED:-20261201}"
VENV="${MIRA_SCHEMATHESIS_VENV:-${TMPDIR:-/tmp}/mira-schemathesis-venv}"
PORT="${MIRA_SCHEMATHESIS_PORT:-7797}"

if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==4.32.5"
fi

DATA="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$DATA"' EXIT
cat > "$DATA/shop.toml" <<'TOML'
name = "shop"
[fields.title]
type = "text"
[fields.category]
type = "keyword"
[fields.price]
type = "f64"
[fields.emb]
type = "vector"
dim = 3
TOML
printf '%s\n' \
  '{"id": "a", "title": "red dress", "category": "dress", "price": 40, "emb": [1, 0, 0]}' \
  '{"id": "b", "title": "blue boots", "category": "shoes", "price": 90, "emb": [0, 1, 0]}' > "$DATA/rows.jsonl"
"$MIRA" --data-dir "$DATA/data" create "$DATA/shop.toml" > /dev/null
"$MIRA" --data-dir "$DATA/data" index shop "$DATA/rows.jsonl" > /dev/null
MIRA_ADMIN_KEY=schemathesis-admin MIRA_SEARCH_KEY=schemathesis-search \
  "$MIRA" --data-dir "$DATA/data" serve --listen "127.0.0.1:$PORT" > "$DATA/serve.log" 2>&1 &
SERVER=$!

run() {
  "$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" \
    --wait-for-schema 30 \
    -H "Authorization: Bearer schemathesis-admin" \
    --checks all --exclude-checks positive_data_acceptance \
    --exclude-name "DELETE /v1/collections/{name}" \
    --exclude-name "DELETE /v1/plugins/{name}" \
    --exclude-name "POST /v1/plugins" \
    --max-examples 30 --workers 1 --max-time "$SECS" --seed "$SEED" \
    --request-timeout 30
}
status=0
run 2>&1 | tee "$DATA/schemathesis.log" || status=$?
# Hypothesis's own crash (the interpreter's bug above) is not a finding about Mira: run again once.
if [ "$status" != 0 ] && grep -q "AST constructor recursion depth mismatch" "$DATA/schemathesis.log"; then
  echo "Schemathesis crashed inside Hypothesis (cpython#106905); running it again" >&2
  status=0
  run || status=$?
fi
if ! kill -0 "$SERVER" 2>/dev/null; then
  echo "the server died during the run:" >&2
  tail -20 "$DATA/serve.log" >&2
  exit 1
fi
if grep -q "panicked" "$DATA/serve.log"; then
  echo "the server logged a panic:" >&2
  grep -B2 -A5 "panicked" "$DATA/serve.log" >&2
  exit 1
fi
exit "$status"
