#!/usr/bin/env bash
# Read benchmark: phigate GET /fhir/Patient/{id} over keep-alive TLS against nginx serving
# the same bytes as a static file over TLS with the same certificate type (ECDSA P-256),
# in the same run on the same machine. Prints req/s and p99 of both and the ratio.
# Usage: bench/read_bench.sh [DURATION_S=15] [CONNECTIONS=32] [PATIENTS=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
CONNS=${2:-32}
COUNT=${3:-10000}
THREADS=2

./scripts/setup.sh >/dev/null
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHIGATE_BUILD_TESTS=OFF >/dev/null
cmake --build build >/dev/null

work=$(mktemp -d /tmp/phigate-bench.XXXXXX)
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "${nginx_pid:-}" ] && kill "$nginx_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}
PORT=$(free_port)
./build/phigate serve --data-dir "$work/data" --listen "127.0.0.1:$PORT" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
for _ in $(seq 100); do grep -q "serving FHIR" "$work/stdout" 2>/dev/null && break; sleep 0.1; done
BASE="https://127.0.0.1:$PORT/fhir"
CA="$work/data/tls/cert.pem"

creds=$(./build/phigate clients add --name bench --scope "system/*.cruds" --roles clinician --data-dir "$work/data" --json)
cid=$(node -p "JSON.parse(process.argv[1]).client_id" "$creds")
csec=$(node -p "JSON.parse(process.argv[1]).client_secret" "$creds")
TOKEN=$(curl -sS --cacert "$CA" -u "$cid:$csec" -d grant_type=client_credentials \
  "https://127.0.0.1:$PORT/oauth2/token" | node -p "JSON.parse(require('fs').readFileSync(0)).access_token")

node bench/seed.mjs "$BASE" "$CA" "$TOKEN" "$COUNT" "$work/ids"
first=$(head -1 "$work/ids")
curl -sS --cacert "$CA" -H "Authorization: Bearer $TOKEN" "$BASE/Patient/$first" >"$work/patient.json"
echo "response body: $(wc -c <"$work/patient.json") bytes"

# nginx: same bytes, same certificate, TLS 1.2+1.3, keep-alive, as many workers as cores.
NPORT=$(free_port)
mkdir -p "$work/nginx/logs" "$work/www"
cp "$work/patient.json" "$work/www/patient.json"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes $(nproc);
error_log $work/nginx/logs/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NPORT ssl;
    ssl_certificate $work/data/tls/cert.pem;
    ssl_certificate_key $work/data/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      root $work/www;
      default_type application/fhir+json;
      add_header Strict-Transport-Security "max-age=31536000" always;
      add_header Cache-Control "no-store" always;
    }
  }
}
NGINX
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off; user root;' &
nginx_pid=$!
sleep 0.5

run_wrk() {  # label url [script]
  local out
  out=$(PHIGATE_IDS="$work/ids" PHIGATE_TOKEN="$TOKEN" wrk -t$THREADS -c$CONNS -d"${DURATION}s" \
    --latency ${3:+-s "$3"} "$2")
  local rps p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local non2xx
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  echo "$1 req/s=$rps p99=$p99 non2xx=${non2xx:-0}" >&2
  echo "$rps"
}

# Warm-up (not measured) for both servers: TLS session setup, page caches, and phigate's
# in-memory cache of current-version ciphertexts (storage.cache_bytes).
PHIGATE_IDS="$work/ids" PHIGATE_TOKEN="$TOKEN" wrk -t$THREADS -c$CONNS -d5s \
  -s bench/read_ids.lua "https://127.0.0.1:$PORT/fhir/Patient/$first" >/dev/null
wrk -t$THREADS -c$CONNS -d5s "https://127.0.0.1:$NPORT/patient.json" >/dev/null

p_rps=$(run_wrk phigate "https://127.0.0.1:$PORT/fhir/Patient/$first" bench/read_ids.lua)
n_rps=$(run_wrk nginx "https://127.0.0.1:$NPORT/patient.json")
ratio=$(awk -v a="$p_rps" -v b="$n_rps" 'BEGIN {printf "%.2f", a / b}')
echo "ratio phigate/nginx = $ratio (wrk -t$THREADS -c$CONNS -d${DURATION}s, $COUNT patients)"
