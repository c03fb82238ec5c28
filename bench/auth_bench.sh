#!/usr/bin/env bash
# Authentication benchmark (issue 3 §5): requests/s for GET /fhir/Patient/{id} over
# keep-alive TLS with
#   - no authentication stage at all (a bench-only build, -DPHIGATE_BENCH_NO_AUTH=ON),
#   - one cached token: phigate's own ES256 token, and an external provider's RS256 and
#     ES256 tokens (bench/bench_idp.mjs serves discovery + JWKS over HTTPS),
#   - a "fresh" token on every request: the same tokens with the verified-token cache
#     turned off (auth.token_cache_entries = 0), so every request pays the full parse +
#     signature + claims check, exactly what a never-seen token costs.
# All runs happen in this one invocation on this machine; the figure that matters is the
# ratio of each run to the no-auth run.
# Usage: bench/auth_bench.sh [DURATION_S=10] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-32}
THREADS=2
AUDIENCE="urn:phigate:bench"

./scripts/setup.sh >/dev/null
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHIGATE_BUILD_TESTS=OFF >/dev/null
cmake --build build >/dev/null
cmake -S . -B build-bench-noauth -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHIGATE_BUILD_TESTS=OFF \
  -DPHIGATE_BENCH_NO_AUTH=ON >/dev/null
cmake --build build-bench-noauth --target phigate >/dev/null

work=$(mktemp -d /tmp/phigate-authbench.XXXXXX)
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "${idp_pid:-}" ] && kill "$idp_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

node bench/bench_idp.mjs "$work" "$AUDIENCE" &
idp_pid=$!
for _ in $(seq 100); do [ -s "$work/idp-issuer" ] && [ -s "$work/token-ES256" ] && break; sleep 0.1; done
ISSUER=$(cat "$work/idp-issuer")

PORT=$(free_port)
BASE="https://127.0.0.1:$PORT/fhir"
write_config() {  # cache_entries
  cat >"$work/phigate.toml" <<TOML
[auth]
token_cache_entries = $1
[[auth.oidc]]
issuer = "$ISSUER"
audience = "$AUDIENCE"
ca_file = "$work/idp-cert.pem"
TOML
}
start() {  # binary cache_entries
  write_config "$2"
  "$1" serve --config "$work/phigate.toml" --data-dir "$work/data" --listen "127.0.0.1:$PORT" \
    >"$work/stdout" 2>"$work/stderr" &
  server_pid=$!
  for _ in $(seq 100); do grep -q "serving FHIR" "$work/stdout" 2>/dev/null && break; sleep 0.1; done
}
stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

start ./build/phigate 100000
CA="$work/data/tls/cert.pem"
creds=$(./build/phigate clients add --name bench --scope "system/*.cruds" --data-dir "$work/data" --json)
cid=$(node -p "JSON.parse(process.argv[1]).client_id" "$creds")
csec=$(node -p "JSON.parse(process.argv[1]).client_secret" "$creds")
OWN=$(curl -sS --cacert "$CA" -u "$cid:$csec" -d grant_type=client_credentials \
  "https://127.0.0.1:$PORT/oauth2/token" | node -p "JSON.parse(require('fs').readFileSync(0)).access_token")
id=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $OWN" -H 'content-type: application/fhir+json' \
  -d '{"resourceType":"Patient","name":[{"family":"Bench"}],"gender":"unknown"}' "$BASE/Patient" |
  node -p "JSON.parse(require('fs').readFileSync(0)).id")
URL="$BASE/Patient/$id"
RS=$(cat "$work/token-RS256")
ES=$(cat "$work/token-ES256")
for t in "$OWN" "$RS" "$ES"; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" -H "Authorization: Bearer $t" "$URL")
  [ "$code" = 200 ] || { echo "a benchmark token was refused ($code)" >&2; exit 1; }
done

run() {  # label token
  local out rps
  wrk -t$THREADS -c$CONNS -d3s -H "Authorization: Bearer $2" "$URL" >/dev/null  # warm-up
  out=$(wrk -t$THREADS -c$CONNS -d"${DURATION}s" --latency -H "Authorization: Bearer $2" "$URL")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  printf '%-32s req/s=%-10s p99=%-8s non2xx=%s\n' "$1" "$rps" \
    "$(echo "$out" | awk '$1=="99%" {print $2}')" "${non2xx:-0}" >&2
  echo "$rps"
}

own_cached=$(run "own ES256, cached" "$OWN")
rs_cached=$(run "external RS256, cached" "$RS")
es_cached=$(run "external ES256, cached" "$ES")
stop
start ./build/phigate 0
own_fresh=$(run "own ES256, every request verified" "$OWN")
rs_fresh=$(run "external RS256, every request verified" "$RS")
es_fresh=$(run "external ES256, every request verified" "$ES")
stop
start ./build-bench-noauth/phigate 0
noauth=$(run "no authentication stage" "x")
stop

ratio() { awk -v a="$1" -v b="$noauth" 'BEGIN {printf "%.3f", a / b}'; }
echo "ratios to the no-auth build (wrk -t$THREADS -c$CONNS -d${DURATION}s):"
echo "  own ES256 cached        $(ratio "$own_cached")"
echo "  external RS256 cached   $(ratio "$rs_cached")"
echo "  external ES256 cached   $(ratio "$es_cached")"
echo "  own ES256 uncached      $(ratio "$own_fresh")"
echo "  external RS256 uncached $(ratio "$rs_fresh")"
echo "  external ES256 uncached $(ratio "$es_fresh")"
