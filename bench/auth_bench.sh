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
# Usage: bench/auth_bench.sh [DURATION_S=8] [CONNECTIONS=32] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-8}
CONNS=${2:-32}
ROUNDS=${3:-3}
THREADS=2
AUDIENCE="urn:phigate:bench"

./scripts/setup.sh >/dev/null
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHIGATE_BUILD_TESTS=OFF \
  -DPHIGATE_BUILD_BENCH=ON >/dev/null
cmake --build build >/dev/null
cmake -S . -B build-bench-noauth -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHIGATE_BUILD_TESTS=OFF \
  -DPHIGATE_BENCH_NO_AUTH=ON >/dev/null
cmake --build build-bench-noauth --target phigate >/dev/null

work=$(mktemp -d /tmp/phigate-authbench.XXXXXX)
cleanup() { rm -rf "$work"; }  # replaced once servers run
trap 'cleanup' EXIT

free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

node bench/bench_idp.mjs "$work" "$AUDIENCE" &
idp_pid=$!
for _ in $(seq 100); do [ -s "$work/idp-issuer" ] && [ -s "$work/token-ES256" ] && break; sleep 0.1; done
ISSUER=$(cat "$work/idp-issuer")

# Three servers side by side, each with its own data dir and one Patient: the normal build
# with the verified-token cache, the normal build without it, and the no-auth build. Only
# the one being measured gets traffic; runs alternate so that drift (thermal, other load)
# hits every configuration alike.
start() {  # name binary cache_entries
  local dir="$work/$1" port
  port=$(free_port)
  mkdir -p "$dir"
  cat >"$dir.toml" <<TOML
[auth]
token_cache_entries = $3
[[auth.oidc]]
issuer = "$ISSUER"
audience = "$AUDIENCE"
ca_file = "$work/idp-cert.pem"
TOML
  "$2" serve --config "$dir.toml" --data-dir "$dir/data" --listen "127.0.0.1:$port" \
    >"$dir.stdout" 2>"$dir.stderr" &
  pids+=($!)
  echo $! >"$dir.pid"
  for _ in $(seq 100); do grep -q "serving FHIR" "$dir.stdout" 2>/dev/null && break; sleep 0.1; done
  local ca="$dir/data/tls/cert.pem" creds cid csec token id
  creds=$("$2" clients add --name bench --scope "system/*.cruds" --roles clinician --data-dir "$dir/data" --json)
  cid=$(node -p "JSON.parse(process.argv[1]).client_id" "$creds")
  csec=$(node -p "JSON.parse(process.argv[1]).client_secret" "$creds")
  token=$(curl -sS --cacert "$ca" -u "$cid:$csec" -d grant_type=client_credentials \
    "https://127.0.0.1:$port/oauth2/token" | node -p "JSON.parse(require('fs').readFileSync(0)).access_token")
  id=$(curl -sS --cacert "$ca" -H "Authorization: Bearer $token" \
    -H 'content-type: application/fhir+json' \
    -d '{"resourceType":"Patient","name":[{"family":"Bench"}],"gender":"unknown"}' \
    "https://127.0.0.1:$port/fhir/Patient" | node -p "JSON.parse(require('fs').readFileSync(0)).id")
  echo "https://127.0.0.1:$port/fhir/Patient/$id" >"$dir.url"
  echo "$token" >"$dir.own"
}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${idp_pid:-}" ] && kill "$idp_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
start cached ./build/phigate 100000
start uncached ./build/phigate 0
start noauth ./build-bench-noauth/phigate 0
RS=$(cat "$work/token-RS256")
ES=$(cat "$work/token-ES256")
for t in "$(cat "$work/cached.own")" "$RS" "$ES"; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$work/cached/data/tls/cert.pem" \
    -H "Authorization: Bearer $t" "$(cat "$work/cached.url")")
  [ "$code" = 200 ] || { echo "a benchmark token was refused ($code)" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$work/$1.pid")/stat"; }
run() {  # server token tag -> req/s; the server's CPU µs per request go to $work/cpu.<tag>
  local url out t0 t1 n
  url=$(cat "$work/$1.url")
  t0=$(cpu_ticks "$1")
  out=$(wrk -t$THREADS -c$CONNS -d"${DURATION}s" -H "Authorization: Bearer $2" "$url")
  t1=$(cpu_ticks "$1")
  [ -z "$(echo "$out" | awk '/Non-2xx/')" ] || { echo "non-2xx answers from $1" >&2; exit 1; }
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$n" \
    'BEGIN {printf "%.1f\n", t / hz * 1e6 / n}' >>"$work/cpu.$3"
  echo "$out" | awk '/Requests\/sec/ {print $2}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# Warm-up, not measured.
for srv in cached uncached noauth; do
  wrk -t$THREADS -c$CONNS -d3s -H "Authorization: Bearer $(cat "$work/$srv.own")" \
    "$(cat "$work/$srv.url")" >/dev/null
done
declare -A results
configs=("noauth|own" "cached|own" "cached|$RS" "cached|$ES" "uncached|own" "uncached|$RS" "uncached|$ES")
labels=("no authentication stage" "own ES256, cached" "external RS256, cached"
        "external ES256, cached" "own ES256, verified every request"
        "external RS256, verified every request" "external ES256, verified every request")
for round in $(seq "$ROUNDS"); do
  for i in "${!configs[@]}"; do
    srv=${configs[$i]%%|*}
    tok=${configs[$i]#*|}
    [ "$tok" = own ] && tok=$(cat "$work/$srv.own")
    results[$i]="${results[$i]:-} $(run "$srv" "$tok" "$i")"
  done
done
base=$(median ${results[0]})
echo "GET /fhir/Patient/{id}, wrk -t$THREADS -c$CONNS -d${DURATION}s, median of $ROUNDS alternating rounds"
for i in "${!configs[@]}"; do
  m=$(median ${results[$i]})
  printf '  %-42s %7.0f req/s  ratio %.3f  server CPU %5.1f µs/request  (runs:%s)\n' \
    "${labels[$i]}" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN {print a / b}')" \
    "$(median $(cat "$work/cpu.$i"))" "${results[$i]}"
done

# The stage's own cost, in-process (Google Benchmark), against the whole request's server
# CPU time measured above on the no-auth build: the share authentication takes.
cpu_us=$(median $(cat "$work/cpu.0"))
echo "server CPU per request without the authentication stage: ${cpu_us} µs (median)"
./build/bench/auth_verify_bench --benchmark_min_time=1 2>/dev/null | awk -v cpu="$cpu_us" '
  /^BM_/ {printf "  %-44s %8.2f µs CPU = %5.1f%% of a request without it\n", $1, $4 / 1000,
          100 * ($4 / 1000) / (cpu + $4 / 1000)}'
